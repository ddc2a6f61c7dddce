"""Intel MPI pin map (I_MPI_DEBUG=4) parser, on real logs from impi-rt 2021.16."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vhpclib.exceptions import ParseError
from vhpclib.parsers.impi_pinmap import PinEntry, parse_cpu_list, parse_pin_map

FIXTURES = Path(__file__).parent / "fixtures" / "imb"


def _expected() -> dict[str, list[PinEntry]]:
    out: dict[str, list[PinEntry]] = {}
    with open(FIXTURES / "expected_pinmaps.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["file"], []).append(PinEntry(
                rank=int(row["rank"]), pid=int(row["pid"]), node=row["node"],
                cpus=parse_cpu_list(row["cpus"])))
    return out


EXPECTED = _expected()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pin_map_reproduces_expected_entries(name: str) -> None:
    assert parse_pin_map((FIXTURES / name).read_text(), file=name) == EXPECTED[name]


def test_multi_node_map_names_each_node_and_ignores_nic_table() -> None:
    text = (FIXTURES / "pingpong_2fakenodes_debug4_tcp.log").read_text()
    assert "Pin nic" in text
    entries = parse_pin_map(text)
    assert [(e.rank, e.node, e.cpus) for e in entries] == [
        (0, "nodea.example", (0,)), (1, "nodea.example", (1,)),
        (2, "nodeb.example", (0,)), (3, "nodeb.example", (1,))]


def test_pin_domain_gives_cpu_ranges() -> None:
    [entry] = parse_pin_map((FIXTURES / "barrier_pindomain2_np1_debug4_shm.log").read_text())
    assert entry.cpus == (0, 1)


def test_log_without_debug_output_has_no_pin_map() -> None:
    assert parse_pin_map((FIXTURES / "pingpong_msglog0-22_shm.log").read_text()) == []


@pytest.mark.parametrize("text, cpus", [
    ("{0}", (0,)), ("0", (0,)), ("{0,1}", (0, 1)), ("{0-3}", (0, 1, 2, 3)),
    ("{0,2,4-7}", (0, 2, 4, 5, 6, 7)), ("{36,0}", (0, 36)), ("1,3", (1, 3)),
])
def test_cpu_list_syntax(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["{}", "{3-1}", "{a}", "{0,,1}"])
def test_cpu_list_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_list(text)


HEADER = "[0] MPI startup(): Rank    Pid      Node name  Pin cpu\n"


def test_braced_cpu_sets_in_a_map_parse() -> None:
    text = HEADER + ("[0] MPI startup(): 0       100      n1         {0,36}\n"
                     "[0] MPI startup(): 1       101      n1         {1-2,37}\n")
    assert parse_pin_map(text) == [PinEntry(0, 100, "n1", (0, 36)), PinEntry(1, 101, "n1", (1, 2, 37))]


def test_header_without_rows_is_a_parse_error_with_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_pin_map("x\n" + HEADER + "#---\n", file="cut.log")
    assert (err.value.file, err.value.line) == ("cut.log", 2)


def test_duplicate_or_missing_rank_is_a_parse_error() -> None:
    row = "[0] MPI startup(): {r}       100      n1         {{0}}\n"
    with pytest.raises(ParseError, match="twice"):
        parse_pin_map(HEADER + row.format(r=0) + row.format(r=0))
    with pytest.raises(ParseError, match="expected 0..1"):
        parse_pin_map(HEADER + row.format(r=0) + row.format(r=2))


def test_malformed_cpu_set_in_map_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="bad cpu"):
        parse_pin_map(HEADER + "[0] MPI startup(): 0       100      n1         {3-1}\n", file="m.log")


def test_two_maps_in_one_log_is_a_parse_error() -> None:
    text = (FIXTURES / "pingpong_pinlist01_debug4_shm.log").read_text()
    with pytest.raises(ParseError, match="2 Intel MPI pin maps"):
        parse_pin_map(text + text, file="twice.log")
