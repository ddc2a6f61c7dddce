"""The stage loop keeps going whatever a run's output does: damaged output is kept as an invalid run with its
logs and reasons, a workload that raises fails only that run.

Damaged outputs are replayed through the real loop, the real mpirun launcher and the real store: a replay
workload inherits the real workload's ``sanity``/``extract`` and only swaps the job for one that prints a
(damaged) copy of a real log.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vhpclib.launchers import Job
from vhpclib.mpi import LaunchSpec
from vhpclib.params import AppParams, MicrobenchParams
from vhpclib.stages.context import StageContext
from vhpclib.stages.driver import run_stage
from vhpclib.store import RawStore
from vhpclib.tables import build_tables
from vhpclib.workloads import Point, get_workload, register_workload, unregister_workload
from vhpclib.workloads.blockss import Blockss
from vhpclib.workloads.npb import NpbMz
from vhpclib.workloads.pingpong import PingPong

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.mpi

GOOD_IMB = (FIXTURES / "imb/pingpong_pinned_debug4_shm.log").read_text()
HEADER = "[0] MPI startup(): Rank    Pid      Node name  Pin cpu\n"
ROW1 = "[0] MPI startup(): 1       10036    vm         {1}\n"


def imb_variants() -> dict[str, str]:
    """Real PingPong output and the ways it arrives damaged."""
    lines = GOOD_IMB.splitlines(keepends=True)
    no_rows = "".join(line for line in lines if "MPI startup(): 0 " not in line and "MPI startup(): 1 " not in line)
    return {
        "empty": "",
        "garbage": "\x00\x01binary junk\n" * 20,
        "truncated": GOOD_IMB[:GOOD_IMB.index("# Benchmarking PingPong") + 40],
        "pin-map-header-without-rows": no_rows,
        "pin-map-duplicated-rank": GOOD_IMB.replace(ROW1, ROW1 + ROW1),
        "two-pin-maps": GOOD_IMB.replace(HEADER, HEADER + "[0] MPI startup(): 0       1    vm   {0}\n"
                                         "[0] MPI startup(): 1       2    vm   {1}\n" + HEADER, 1),
        "good": GOOD_IMB,
    }


def write_variants(folder: Path, variants: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (name, text) in enumerate(variants.items()):
        path = folder / f"{i:02d}-{name}.log"
        path.write_text(text)
        out.append(path)
    return out


def replay_job(log: Path, extra: str = "", **point) -> Job:
    """A one-rank job printing ``log`` (and running ``extra``), launched by the real mpirun launcher."""
    script = f"cat {shlex.quote(str(log))}{'; ' + extra if extra else ''}"
    return Job(["/bin/sh", "-c", script], LaunchSpec(1, report_binding=False), point=point)


class ReplayPingPong(PingPong):
    name = "replay-pingpong"

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs

    def plan(self, stage, ctx, params):
        return [Point(self.name, "replay-intra-socket", {"placement": "intra-socket"})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        return replay_job(self.logs[repetition - 1], cpus=[0, 1], hosts=None)


class ReplayBlockss(Blockss):
    name = "replay-blockss"

    def __init__(self, cases: list[tuple[Path, Path | None]]) -> None:
        self.cases = cases

    def plan(self, stage, ctx, params):
        return [Point(self.name, "replay-small-p2-t1", {"workload": "blockss", "problem": "small", "processes": 2,
                                                        "threads": 1, "ppn": 2})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        log, result = self.cases[repetition - 1]
        copy = f"cp {shlex.quote(str(result))} blockss.json" if result else ""
        return replay_job(log, copy)


class ReplayNpb(NpbMz):
    name = "replay-npb"

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs

    def plan(self, stage, ctx, params):
        return [Point(self.name, "replay-sp-mz-S-p2-t1", {"workload": "sp-mz", "problem": "S", "processes": 2,
                                                          "threads": 1, "ppn": 2})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        return replay_job(self.logs[repetition - 1])


@pytest.fixture()
def registered():
    names: list[str] = []

    def register(workload):
        register_workload(workload)
        names.append(workload.name)
        return workload

    yield register
    for name in names:
        unregister_workload(name)


def local_ctx(tmp_path: Path, campaign: str) -> StageContext:
    return StageContext.open(Path(__file__).resolve().parent.parent / "inventories/local.yml", "local", campaign,
                             store=RawStore(tmp_path / "raw"))


def test_damaged_imb_output_is_kept_invalid_with_its_logs_and_the_stage_goes_on(tmp_path, registered):
    variants = imb_variants()
    workload = registered(ReplayPingPong(write_variants(tmp_path / "logs", variants)))
    with local_ctx(tmp_path, "dmg") as ctx:
        result = run_stage(ctx, "microbench", MicrobenchParams(workloads=(workload.name,),
                                                               repetitions=len(variants)), progress=False)
    assert result.failures == [] and result.measured == len(variants)
    assert [r.run_id for r in result.runs] == [f"replay-intra-socket-r{len(variants):02d}"]  # only the good one
    reasons = {r.run_id: r.record.reason for r in result.invalid}
    assert len(reasons) == len(variants) - 1
    assert "no IMB banner" in reasons["replay-intra-socket-r01"]  # empty
    assert "no IMB banner" in reasons["replay-intra-socket-r02"]  # garbage
    assert "no complete IMB result row" in reasons["replay-intra-socket-r03"]  # truncated
    assert "pin map header without rows" in reasons["replay-intra-socket-r04"]
    assert "lists rank 1 twice" in reasons["replay-intra-socket-r05"]
    assert "2 Intel MPI pin maps" in reasons["replay-intra-socket-r06"]
    for run in result.invalid:  # kept, logs and all, under the run id
        assert run.path.name == run.run_id and (run.path / "stdout.log").read_text() == \
            variants[list(variants)[run.record.repetition - 1]]
    good = result.runs[0].record
    assert good.pinning.verification == "verified" and good.result.rows == 22  # 0 B and 2^0 .. 2^20 B


def blockss_cases(folder: Path) -> list[tuple[Path, Path | None]]:
    log = FIXTURES / "app/small.np2.omp1.log"
    good = FIXTURES / "app/small.np2.omp1.run.json"
    text = good.read_text()
    folder.mkdir(parents=True, exist_ok=True)
    files = {"empty.json": "", "truncated.json": text[: len(text) // 2], "garbage.json": "\x00junk",
             "list.json": "[1, 2]", "other-total.json": text.replace('"total": 1.4988', '"total": 9.4988')}
    for name, body in files.items():
        (folder / name).write_text(body)
    cut_log = folder / "cut.log"
    cut_log.write_text(log.read_text()[:-200])
    return [(log, None), (log, folder / "empty.json"), (log, folder / "truncated.json"), (log, folder / "garbage.json"),
            (log, folder / "list.json"), (cut_log, good), (log, folder / "other-total.json"), (log, good)]


def test_damaged_blockss_output_is_kept_invalid_and_the_stage_goes_on(tmp_path, registered):
    cases = blockss_cases(tmp_path / "cases")
    workload = registered(ReplayBlockss(cases))
    with local_ctx(tmp_path, "dmg") as ctx:
        result = run_stage(ctx, "single-node", AppParams(workloads=(workload.name,), repetitions=len(cases)),
                           progress=False)
    assert result.failures == [] and [r.run_id for r in result.runs] == ["replay-small-p2-t1-r08"]
    reasons = {r.record.repetition: r.record.reason for r in result.invalid}
    assert "no readable blockss.json" in reasons[1]
    assert all("no readable blockss.json" in reasons[i] for i in (2, 3, 4, 5))
    assert "log has no result" in reasons[6] and "final timing block" in reasons[6]
    assert "differs from blockss.json" in reasons[7]
    good = json.loads((result.runs[0].path / "result.json").read_text())["rows"][0]
    assert good["time_s"] == 1.498878 and good["verified"] is True  # the log's microsecond resolution


def test_damaged_npb_output_is_kept_invalid_and_the_stage_goes_on(tmp_path, registered):
    good = (FIXTURES / "npb/sp-mz.S.np2.omp1.impi.log").read_text()
    variants = {"empty": "", "garbage": "junk\n", "cut-before-result": good[:good.index("Benchmark Completed")],
                "cut-mid-result": good[:good.index(" Mop/s total") + 20], "good": good}
    workload = registered(ReplayNpb(write_variants(tmp_path / "logs", variants)))
    with local_ctx(tmp_path, "dmg") as ctx:
        result = run_stage(ctx, "single-node", AppParams(workloads=(workload.name,), repetitions=len(variants)),
                           progress=False)
    assert result.failures == [] and len(result.invalid) == 4 and len(result.runs) == 1
    assert all(r.record.reason.startswith("output has no result") for r in result.invalid)
    built = build_tables("dmg", store=RawStore(tmp_path / "raw"))
    apps = built.tables["apps"]
    assert list(apps["status"]) == ["complete"] and bool(apps["verified"].iloc[0])


class ReplayNpbBuilt(ReplayNpb):
    """Runs whose build recorded the compile options every binary must print."""

    name = "replay-npb-built"
    BUILD = {"F77": "mpif90", "FLINK": "mpif90", "F_LIB": None, "F_INC": None, "FFLAGS": "-O3 -fopenmp",
             "FLINKFLAGS": "-O3 -fopenmp", "RAND": None}

    def job(self, ctx, point, repetition, prepared, params):
        job = super().job(ctx, point, repetition, prepared, params)
        build = {**self.BUILD, "FFLAGS": "-O2"} if repetition == 1 else self.BUILD
        return Job(job.program, job.launch, point=job.point, record={"compile_options": build})


def test_an_npb_binary_printing_other_compile_options_than_its_build_is_invalid(tmp_path, registered):
    log = FIXTURES / "npb/sp-mz.S.np2.omp1.impi.vhpc-build.log"  # a real 3.3.1 run of a vhpc build
    workload = registered(ReplayNpbBuilt([log, log]))
    with local_ctx(tmp_path, "opts") as ctx:
        result = run_stage(ctx, "single-node", AppParams(workloads=(workload.name,), repetitions=2), progress=False)
    [invalid] = result.invalid
    assert invalid.record.reasons == ["binary printed FFLAGS = -O3 -fopenmp (the build set -O2)"]
    assert [r.record.repetition for r in result.runs] == [2]


class Raising(PingPong):
    """A workload whose own code breaks on some output: that run fails, the others are measured."""

    name = "raising"

    def plan(self, stage, ctx, params):
        return [Point(self.name, "raising", {"placement": "intra-socket"})]

    def prepare(self, ctx, points, params):
        return None

    def job(self, ctx, point, repetition, prepared, params):
        return replay_job(FIXTURES / "imb/pingpong_pinned_debug4_shm.log", cpus=[0, 1], hosts=None)

    def sanity(self, run):
        if run.record.repetition == 1:
            raise KeyError("a bug in sanity")
        return []

    def extract(self, run):
        if run.record.repetition == 2:
            raise ZeroDivisionError("a bug in extract")
        return super().extract(run)


def test_an_exception_in_sanity_or_extract_fails_only_that_run(tmp_path, registered):
    workload = registered(Raising())
    with local_ctx(tmp_path, "boom") as ctx:
        result = run_stage(ctx, "microbench", MicrobenchParams(workloads=(workload.name,), repetitions=3),
                           progress=False)
    assert len(result.failures) == 2 and len(result.runs) == 1
    assert "sanity check raised KeyError" in result.failures[0]
    assert "extraction raised ZeroDivisionError" in result.failures[1]
    kept = sorted(p.name for p in (tmp_path / "raw/boom/local/microbench").iterdir())
    assert kept[0].startswith("raising-r01.failed-") and kept[1].startswith("raising-r02.failed-")
    assert kept[2] == "raising-r03"
    with local_ctx(tmp_path, "boom") as ctx:  # resume measures the failed repetitions again
        again = run_stage(ctx, "microbench", MicrobenchParams(workloads=(workload.name,), repetitions=3),
                          progress=False)
    assert again.reused == 1 and again.measured == 0 and len(again.failures) == 2


def test_a_point_needing_more_nodes_than_the_environment_has_is_recorded_as_skipped(tmp_path):
    with local_ctx(tmp_path, "skip") as ctx:
        result = run_stage(ctx, "scaling", AppParams(workloads=("blockss",), processes=(8,), blockss_preset="tiny"),
                           progress=False)
    assert result.measured == 0 and result.skipped == ["blockss p=8: needs 4 node(s), environment has 1"]
    skip = RawStore(tmp_path / "raw").load("skip", "local", "scaling", "blockss-tiny-p8-t1-skipped").record
    assert skip.status == "skipped" and skip.kind == "skip" and skip.point["processes"] == 8
    assert get_workload("blockss").name == "blockss"
