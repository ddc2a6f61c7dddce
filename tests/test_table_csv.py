"""Tables are written without importing pandas, byte for byte as pandas would write them."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vhpclib.store import RawStore
from vhpclib.tables import collect_tables, csv_text

ROOT = Path(__file__).resolve().parent.parent
VALUES = [None, 0, 1, -7, 2**40, 0.1, 3.0, 1e-05, 1e16, -0.0, float("nan"), float("inf"), True, False, "x",
          "a,b", 'q"uote', "", "line\nbreak", "1.0"]


@pytest.mark.parametrize("size", [1, 2, 3])
def test_every_mix_of_value_types_in_a_column_is_written_as_pandas_writes_it(size):
    for combo in itertools.product(VALUES, repeat=size):
        rows = [{"a": v, "b": i} for i, v in enumerate(combo)]
        expected = pd.DataFrame(rows, columns=["a", "b", "missing"]).to_csv(index=False)
        assert csv_text(["a", "b", "missing"], rows) == expected, combo


def test_an_empty_table_is_its_header():
    assert csv_text(["a", "b"], []) == pd.DataFrame([], columns=["a", "b"]).to_csv(index=False)


def test_the_committed_campaign_is_written_as_pandas_writes_it():
    tables, _ = collect_tables("embedded", store=RawStore(ROOT / "data/raw"), reparse=True)
    for name, table in tables.items():
        assert table.csv() == table.frame().to_csv(index=False), name


def test_writing_tables_does_not_import_pandas(tmp_path):
    shutil.copytree(ROOT / "data/raw/embedded", tmp_path / "data/raw/embedded")
    code = ("import sys; from vhpclib.tables import write_tables; write_tables('embedded'); "
            "print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "VHPC_DATA": str(tmp_path / "data")})
    assert done.stdout.strip() == "False"
