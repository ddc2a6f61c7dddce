"""Parser of the blockss log (vhpclib.parsers.app) on real captured logs + expected.csv."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from vhpclib.exceptions import ParseError
from vhpclib.parsers import app, get_parser

FIXTURES = Path(__file__).parent / "fixtures" / "app"
with open(FIXTURES / "expected.csv", newline="") as _fh:
    EXPECTED = list(csv.DictReader(_fh))


def _convert(col: str, text: str):
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if col in ("file", "app", "version", "problem", "kind", "method", "solver"):
        return text
    return float(text)


@pytest.mark.parametrize("want", EXPECTED, ids=[r["file"] for r in EXPECTED])
def test_parse_reproduces_expected_row(want: dict[str, str]) -> None:
    result = app.parse((FIXTURES / want["file"]).read_text(), file=want["file"])
    [rec] = result.records
    assert list(rec) == app.COLUMNS
    for col in app.COLUMNS:
        exp = _convert(col, want[col])
        assert rec[col] == (pytest.approx(exp) if isinstance(exp, float) else exp), col


def test_registry_serves_app_parser() -> None:
    assert get_parser("app") is app


def test_parse_rejects_log_without_final_timing_block(tmp_path) -> None:
    name = "constructed_tiny.np2.truncated-before-timings.log"
    with pytest.raises(ParseError) as err:
        app.parse((FIXTURES / name).read_text(), file=name)
    assert err.value.file == name and "timing block" in str(err.value)


def test_parse_rejects_log_cut_inside_timing_block(tmp_path) -> None:
    text = (FIXTURES / "tiny.np2.omp1.log").read_text()
    cut = text[: text.index("  extract")]
    with pytest.raises(ParseError, match="missing extract, total"):
        app.parse(cut, file="cut.log")


def test_parse_rejects_failed_run_with_only_an_error_line() -> None:
    name = "tiny.np2.error-both-inputs.log"
    with pytest.raises(ParseError) as err:
        app.parse((FIXTURES / name).read_text(), file=name)
    assert err.value.file == name and "not a blockss log" in str(err.value)


def test_parse_rejects_eigenvalue_count_that_disagrees_with_rows(tmp_path) -> None:
    src = tmp_path / "tiny.log"
    shutil.copy(FIXTURES / "tiny.np1.omp1.log", src)
    lines = src.read_text().splitlines(keepends=True)
    row = next(i for i, ln in enumerate(lines) if ln.startswith("   3 "))
    src.write_text("".join(lines[:row] + lines[row + 1:]))
    with pytest.raises(ParseError, match="accepted=9 but lists 8"):
        app.parse(src.read_text(), file=str(src))


def test_solver_warnings_become_parse_warnings_and_unverified() -> None:
    name = "tiny.np1.omp2.L2M2-subspace-full.log"
    result = app.parse((FIXTURES / name).read_text(), file=name)
    [rec] = result.records
    assert rec["subspace_full"] and not rec["verified"] and rec["n_rejected"] == 4
    assert rec["max_residual"] is None  # no accepted eigenvalue: no residual, not NaN
    assert any("subspace full" in str(w) and str(w).startswith(name + ":11:") for w in result.warnings)


def test_parse_ignores_launcher_noise_around_the_log() -> None:
    text = (FIXTURES / "tiny.np2.omp1.log").read_text()
    noisy = "[0] MPI startup(): Intel(R) MPI Library, Version 2021.16\n" + text + "[mpiexec] done\n"
    assert app.parse(noisy, file="noisy.log").records == app.parse(text, file="noisy.log").records
