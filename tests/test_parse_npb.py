"""NPB-MZ parser: real NPB3.3-MZ and NPB3.4-MZ logs, a 3.4-MZ log built from the documented format, failures."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from vhpclib.exceptions import ParseError
from vhpclib.parsers import get_parser, npb

FIXTURES = Path(__file__).parent / "fixtures" / "npb"


def _expected() -> list[dict[str, str]]:
    rows = []
    for name in ("expected.csv", "expected_constructed.csv"):
        with open(FIXTURES / name, newline="") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


EXPECTED = _expected()


def _parse(name: str) -> npb.ParseResult:
    return npb.parse((FIXTURES / name).read_text(), file=name)


@pytest.mark.parametrize("want", EXPECTED, ids=[r["file"] for r in EXPECTED])
def test_parse_reproduces_expected_row(want: dict[str, str]) -> None:
    result = _parse(want["file"])
    assert result.warnings == []
    [rec] = result.records
    assert list(rec) == npb.COLUMNS
    assert rec["file"] == want["file"]
    assert rec["benchmark"] == want["benchmark"]
    assert rec["class"] == want["class"]
    assert rec["nprocs"] == int(want["nprocs"])
    assert rec["total_threads"] == int(want["total_threads"])
    for key in ("time_s", "mops_total", "mops_per_thread"):
        assert rec[key] == pytest.approx(float(want[key]), abs=0.006)
    assert rec["verified"] is (want["verified"] == "true")
    assert rec["npb_version"] == want["npb_version"]
    assert rec["iterations"] == int(want["iterations"])
    assert rec["zones"] == want["zones"]
    for key in ("fc", "flink", "f_lib", "f_inc", "fflags", "flinkflags", "rand"):
        assert rec[key] == (want[key] or None), key


def test_registry_returns_npb_parser() -> None:
    assert get_parser("npb").parse is npb.parse


def test_verification_failure_parses_as_unverified_without_error() -> None:
    [rec] = _parse("sp-mz.S.np2.omp1.impi.niter60-verif-fail.log").records
    assert rec["verified"] is False
    assert rec["iterations"] == 60


def test_npb34_header_and_version_parse() -> None:
    [rec] = _parse("constructed_npb34_sp-mz.S.np2.omp1.log").records
    assert (rec["benchmark"], rec["npb_version"], rec["zones"]) == ("SP-MZ", "3.4.3", "2x2")


def test_compile_options_name_the_compiler_the_build_chose_per_version() -> None:
    [r33] = _parse("sp-mz.S.np2.omp1.impi.vhpc-build.log").records
    [r34] = _parse("npb34-sp-mz.S.np2.omp1.impi.vhpc-build.log").records
    # 3.3 prints F77, 3.4 prints FC: both land in the fc column
    assert (r33["fc"], r33["flink"], r33["npb_version"]) == ("mpif90", "mpif90", "3.3.1")
    assert (r34["fc"], r34["flink"], r34["npb_version"]) == ("mpif90", "mpif90", "3.4")
    assert npb.COLUMNS[:12] == ["file", "benchmark", "class", "nprocs", "total_threads", "time_s", "mops_total",
                                "mops_per_thread", "verified", "npb_version", "iterations", "zones"]


def test_log_without_compile_options_leaves_them_empty_and_cut_block_warns() -> None:
    text = (FIXTURES / "sp-mz.S.np2.omp1.impi.vhpc-build.log").read_text()
    [rec] = npb.parse(text[:text.index(" Compile options:")], file="short.log").records
    assert rec["verified"] is True and rec["fc"] is None and rec["fflags"] is None
    cut = text[:text.index("-O3 -fopenmp\n") + 3]
    result = npb.parse(cut, file="cut.log")
    assert result.records[0]["fflags"] is None and result.records[0]["fc"] == "mpif90"
    assert len(result.warnings) == 1 and "ends mid-line in 'Compile options'" in result.warnings[0].message


def _cut_before(name: str, marker: str) -> str:
    text = (FIXTURES / name).read_text()
    return text[:text.index(marker)]


def test_parse_rejects_log_cut_before_result_block_naming_the_file() -> None:
    text = _cut_before("bt-mz.A.np1.omp1.impi.log", " Time step  120")
    with pytest.raises(ParseError) as err:
        npb.parse(text, file="bt.log")
    assert err.value.file == "bt.log"
    assert "no 'Benchmark Completed.' result block" in err.value.message
    assert str(err.value).startswith("bt.log:")


def test_parse_rejects_result_block_missing_a_required_line() -> None:
    text = _cut_before("lu-mz.S.np1.omp1.impi.log", " Mop/s total")
    with pytest.raises(ParseError, match="'Mop/s total'"):
        npb.parse(text, file="lu.log")


def test_parse_rejects_value_cut_mid_line() -> None:
    text = (FIXTURES / "sp-mz.A.np2.omp2.impi.log").read_text()
    cut = text.index("6738.88") + 2  # "67" would otherwise read as a valid number
    with pytest.raises(ParseError, match="ends mid-line"):
        npb.parse(text[:cut], file="sp.log")


def test_parse_rejects_fortran_overflow_stars() -> None:
    text = (FIXTURES / "sp-mz.A.np2.omp2.impi.log").read_text().replace(
        "Mop/s total     =                  6738.88", "Mop/s total     =             ************")
    with pytest.raises(ParseError, match="not a number") as err:
        npb.parse(text, file="sp.log")
    assert err.value.line is not None


def test_parse_rejects_non_npb_text() -> None:
    with pytest.raises(ParseError, match="no NPB-MZ header"):
        npb.parse("hello\n", file="x.log")


def test_parse_rejects_two_runs_in_one_log() -> None:
    text = (FIXTURES / "sp-mz.S.np2.omp1.impi.log").read_text()
    with pytest.raises(ParseError, match="2 result blocks"):
        npb.parse(text + text, file="twice.log")


def test_class_mismatch_between_verification_and_result_warns() -> None:
    text = (FIXTURES / "sp-mz.S.np2.omp1.impi.log").read_text().replace(
        "Verification being performed for class S", "Verification being performed for class W")
    result = npb.parse(text, file="sp.log")
    assert len(result.warnings) == 1
    assert str(result.warnings[0]).startswith("sp.log:")
    assert "class W" in result.warnings[0].message


def test_random_truncations_raise_nothing_but_parse_error() -> None:
    rng = random.Random(2011)
    for path in sorted(FIXTURES.glob("*.log")):
        text = path.read_text()
        for _ in range(40):
            cut = text[:rng.randrange(len(text) + 1)]
            try:
                result = npb.parse(cut, file=path.name)
            except ParseError as err:
                assert err.file == path.name
            else:
                assert len(result.records) == 1
