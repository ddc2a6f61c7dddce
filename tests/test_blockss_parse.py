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


def test_rejected_rows_carry_their_reason_and_spurious_ones_are_counted() -> None:
    name = "nonnormal-kappa1e4.np2.omp1.v0.2.log"
    text = (FIXTURES / name).read_text()
    [rec] = app.parse(text, file=name).records
    assert (rec["n_eigenvalues"], rec["n_rejected"], rec["n_spurious"]) == (8, 14, 14)
    assert "R 11  +3.05612570682932709e-03  -1.22062174122026315e-02  2.145e-10 moments" in text
    # a pair rejected for its residual alone is not spurious
    only_residual = text.replace("2.145e-10 moments\n", "2.145e-10 residual\n")
    assert app.parse(only_residual, file=name).records[0]["n_spurious"] == 13


def test_outside_rows_give_the_nearest_dropped_eigenvalue_and_must_match_the_count() -> None:
    name = "nonnormal-kappa1e4.np2.omp1.v0.2.log"
    text = (FIXTURES / name).read_text()
    assert app.parse(text, file=name).records[0]["nearest_outside"] == pytest.approx(1.226e-3)
    lines = text.splitlines(keepends=True)
    row = next(i for i, ln in enumerate(lines) if ln.startswith("O  7 "))
    with pytest.raises(ParseError, match="outside=42 but lists 41 outside rows"):
        app.parse("".join(lines[:row] + lines[row + 1:]), file=name)


def test_eigenvalue_found_L_times_warns_and_makes_the_run_unverified() -> None:
    name = "hermitian-mult14-L8.np2.omp1.v0.2.log"
    result = app.parse((FIXTURES / name).read_text(), file=name)
    [rec] = result.records
    assert rec["verified"] is False and not rec["subspace_full"] and rec["n_eigenvalues"] == 10
    [warning] = result.warnings
    assert str(warning).startswith(f"{name}:11:") and "found 8 times = L=8" in warning.message
    assert "--L 16" in warning.message
