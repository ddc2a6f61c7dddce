"""How do tables, figures and resume planning cost as a campaign grows to 100,000 runs?

Builds synthetic campaigns from the committed runs of ``data/raw/embedded-guest`` (never written: the
copies go to a VHPC_DATA under a scratch folder): every measured run is a template, repeated with new
repetition numbers (unique run ids ``<stem>-r<rep>``, same points), start times spread over days and
every number of its extracted rows scaled by log-normal noise (a few percent, like repeated
measurements), so records and results differ where run ids differ. Logs and other files identical to
the template's are hard links (cheap to make, cheap on disk). Skips and fingerprints are copied once.

For each size of the ladder (default 1k, 10k, 100k runs), in fresh processes (their wall time and peak
RSS from ``wait4``):
  tables        ``vhpc tables`` with no processed tables nor table cache (cold);
  incremental   ``vhpc tables`` again after 100 more runs were stored;
  figures       ``vhpc figures`` (tables, every artifact, the report);
  plan          resume planning: stored repetitions per point of every environment and stage, as
                ``vhpc run --rerun`` counts them (the time of the counting itself, in a fresh process),
                once to build the run index the store keeps (``plan_first``: synthetic runs bypass the
                store), then as every later invocation pays it (``plan``).

Last line: ``tables_s_100k=… incremental_s_100k=… figures_s_100k=… plan_s_100k=… rss_mb_100k=…
growth_exponent=…`` (rss: the largest of the four commands; growth exponent of the figures time between
the two largest sizes, log(t_big/t_small)/log(n_big/n_small)). ``--ladder 200,1000`` runs a small
ladder quickly; ``--keep DIR`` keeps (and reuses) the generated campaigns. Timings on a machine other
work shares are noisy: compare sizes measured in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "data" / "raw" / "embedded-guest"
CAMPAIGN = "scale"
VHPC = [sys.executable, "-m", "vhpclib.cli"]
_LINKED = ("run.json", "result.json")  # written per run; every other file is a hard link to the template's

PLAN = """
import sys, time
from vhpclib.store import RawStore
t0 = time.perf_counter()
store = RawStore()
total = 0
for env in sorted(p.name for p in (store.root / sys.argv[1]).iterdir() if p.is_dir()):
    for stage in sorted(p.name for p in (store.root / sys.argv[1] / env).iterdir() if p.is_dir()):
        total += sum(store.measured_counts(sys.argv[1], env, stage).values())
print(f"{time.perf_counter() - t0:.6f} {total}")
"""


class Template:
    """One committed run: its folder, record and result, loaded once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env, self.stage = folder.parent.parent.name, folder.parent.name
        self.record = json.loads((folder / "run.json").read_text())
        result = folder / "result.json"
        self.result = json.loads(result.read_text()) if result.is_file() else None
        self.files = [p.name for p in folder.iterdir() if p.name not in _LINKED]
        stem, _, rep = self.record["run_id"].rpartition("-r")
        self.stem = stem if rep.isdigit() else self.record["run_id"]
        ex = self.record.get("execution") or {}
        self.started = ex.get("started_utc")
        self.duration = ex.get("duration_s") or 1.0


def templates() -> tuple[list[Template], list[Path]]:
    """Measured runs (repeated) and every other folder (skips, fingerprints: copied once)."""
    runs, others = [], []
    for env in sorted(p for p in SOURCE.iterdir() if p.is_dir()):
        for stage in sorted(p for p in env.iterdir() if p.is_dir()):
            for folder in sorted(p for p in stage.iterdir() if p.is_dir()):
                t = Template(folder) if (folder / "run.json").is_file() else None
                if t and t.record.get("kind") == "run" and t.record.get("status") in ("complete", "invalid"):
                    runs.append(t)
                else:
                    others.append(folder)
            if not any(p.is_dir() for p in stage.iterdir()):
                others.append(stage)
    return runs, others


def _noisy(value, rng: random.Random, factor: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        return value  # counts, sizes, ranks: identity, not measurements
    return round(value * factor * math.exp(rng.gauss(0.0, 0.03)), 9)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(raw: Path, count: int, *, first: int = 0, seed: int = 1) -> int:
    """Store runs ``first .. first+count-1`` of the synthetic campaign under ``raw``; returns runs written."""
    runs, others = templates()
    base = raw / CAMPAIGN
    if first == 0:
        for folder in others:
            dest = base / folder.relative_to(SOURCE)
            if folder.is_dir() and not dest.exists():
                shutil.copytree(folder, dest, copy_function=os.link)
    distinct = _distinct(runs)  # one repetition of every point per round
    offset = _offset(runs)
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    written = 0
    for i in range(first, first + count):
        t = distinct[i % len(distinct)]
        rep = offset + 1 + i // len(distinct)
        rng = random.Random(seed * 1_000_003 + i)
        run_id = f"{t.stem}-r{rep:02d}"
        folder = base / t.env / t.stage / run_id
        folder.mkdir(parents=True)
        for name in t.files:
            os.link(t.folder / name, folder / name)
        record = dict(t.record, run_id=run_id, repetition=rep, campaign=CAMPAIGN)
        drift = math.exp(rng.gauss(0.0, 0.02))  # a run's own slowness, shared by its numbers
        if record.get("execution"):
            began = start + timedelta(seconds=i * 7.3 + rng.random())
            duration = round(t.duration * drift, 6)
            record["execution"] = dict(record["execution"], started_utc=_stamp(began), duration_s=duration,
                                       ended_utc=_stamp(began + timedelta(seconds=duration)),
                                       job_tag=f"{rng.getrandbits(128):032x}")
        if t.result is not None:
            rows = [{k: _noisy(v, rng, drift) for k, v in row.items()} for row in t.result.get("rows", [])]
            (folder / "result.json").write_text(json.dumps({"table": t.result.get("table"), "rows": rows},
                                                           indent=1) + "\n")
        (folder / "run.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        written += 1
    return written


def timed(args: list[str], env: dict[str, str], timeout: float) -> tuple[float | None, float, str]:
    """Wall seconds (None past ``timeout``), peak RSS in MB and stdout of one fresh process."""
    out = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.DEVNULL)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return None, usage.ru_maxrss / 1024, ""
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args[3:])} failed ({proc.returncode})")
    return elapsed, usage.ru_maxrss / 1024, text


def measure(size: int, scratch: Path, timeout: float, skip_figures: bool) -> dict[str, float | None]:
    data = scratch / f"n{size}"
    raw = data / "raw"
    marker = data / f"generated-{size}"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.perf_counter()
        generate(raw, size)
        marker.write_text("")
        print(f"  generated {size} runs in {time.perf_counter() - t0:.1f} s", flush=True)
    else:  # a kept campaign: back to its size (runs added by an interrupted measurement removed)
        _remove_added(raw, size)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHPC_")}
    env.update(VHPC_DATA=str(data), VHPC_FIGURES=str(data / "figures"), VHPC_EXECUTED=str(data / "executed"))
    shutil.rmtree(data / "processed", ignore_errors=True)
    shutil.rmtree(data / "figures", ignore_errors=True)
    result: dict[str, float | None] = {}
    rss = []
    result["tables"], mb, _ = timed([*VHPC, "tables", "-c", CAMPAIGN], env, timeout)
    rss.append(mb)
    generate(raw, 100, first=size, seed=2)
    result["incremental"], mb, _ = timed([*VHPC, "tables", "-c", CAMPAIGN], env, timeout)
    rss.append(mb)
    if skip_figures:
        result["figures"] = None
    else:
        result["figures"], mb, _ = timed([*VHPC, "figures", "-c", CAMPAIGN], env, timeout)
        rss.append(mb)
    for name in ("plan_first", "plan"):  # the first builds the run index (the generator bypasses the store)
        _, mb, text = timed([sys.executable, "-c", PLAN, CAMPAIGN], env, timeout)
        rss.append(mb)
        result[name] = float(text.split()[0]) if text.strip() else None
    result["rss_mb"] = max(rss)
    _remove_added(raw, size)
    return result


def _remove_added(raw: Path, size: int) -> None:
    """Drop the 100 runs added for the incremental measurement, so a kept campaign stays ``size`` runs."""
    runs, _ = templates()
    order, offset = _distinct(runs), _offset(runs)
    for i in range(size, size + 100):
        t = order[i % len(order)]
        shutil.rmtree(raw / CAMPAIGN / t.env / t.stage / f"{t.stem}-r{offset + 1 + i // len(order):02d}",
                      ignore_errors=True)


def _distinct(runs: list[Template]) -> list[Template]:
    """One template per point (environment, stage, stem): a round of the synthetic campaign."""
    by_stem: dict[tuple[str, str, str], Template] = {}
    for t in runs:
        by_stem.setdefault((t.env, t.stage, t.stem), t)
    return list(by_stem.values())


def _offset(runs: list[Template]) -> int:
    """Repetitions above the committed ones: synthetic run ids never equal a template's."""
    return max(int(t.record.get("repetition") or 0) for t in runs)


def _fmt(value: float | None) -> str:
    return "timeout" if value is None else f"{value:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladder", default="1000,10000,100000", help="campaign sizes in runs, comma-separated")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) the generated campaigns in this folder")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before one command is given up")
    ap.add_argument("--no-figures", action="store_true", help="time tables and planning only")
    args = ap.parse_args()
    ladder = sorted(int(x) for x in args.ladder.split(","))
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="vhpc-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for size in ladder:
            print(f"{size} runs:", flush=True)
            results[size] = measure(size, scratch, args.timeout, args.no_figures)
            print("  " + " ".join(f"{k}={_fmt(v)}" for k, v in results[size].items()), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    big = ladder[-1]
    small = ladder[-2] if len(ladder) > 1 else None
    growth = None
    if small and results[small]["figures"] and results[big]["figures"]:
        growth = math.log(results[big]["figures"] / results[small]["figures"]) / math.log(big / small)
    tag = f"{big // 1000}k" if big % 1000 == 0 else str(big)
    r = results[big]
    print(f"tables_s_{tag}={_fmt(r['tables'])} incremental_s_{tag}={_fmt(r['incremental'])} "
          f"figures_s_{tag}={_fmt(r['figures'])} plan_s_{tag}={_fmt(r['plan'])} rss_mb_{tag}={r['rss_mb']:.0f} "
          f"growth_exponent={'n/a' if growth is None else f'{growth:.2f}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
