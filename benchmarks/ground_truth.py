"""Do vHPC's overhead intervals cover a known truth? blockss against injected CPU losses, real and simulated.

Real trials: for each injected loss (0 % = A/A, 5, 10, 20 %) and each trial, a fresh campaign measures
blockss single-node on this machine (``local``) and on the same machine with the loss injected by a
cgroup CPU bandwidth limit (``providers.throttled``), adaptive (``--ci-target``) and interleaved (ABBA).
The truth of a trial is measured, not assumed: the median over its throttled runs of the overhead their
cgroup counted (CPU time held back / CPU time used). A trial covers when its reported interval of
"overhead vs local" contains that truth; it detects when the interval also excludes 0.

Simulation: the run-to-run noise this machine recorded (log residuals of every blockss single-node run
of the committed campaigns, and of this call's own baseline runs) is resampled into baseline and
throttled samples (throttled = (1 + truth) x noise), and the same stopping rule (looks, weighted
Bonferroni levels, Hodges-Lehmann/Moses ratio interval, target half-width, cap) is applied to
``--sim-trials`` experiments per level.

Needs root (cgroups). Last line:
``coverage_real=... coverage_sim=... detected_5pct=K/N detected_10pct=K/N false_positive_aa=K/N
median_machine_s_10pct=...``

    .venv/bin/python benchmarks/ground_truth.py                       # the full run (hours on this machine)
    .venv/bin/python benchmarks/ground_truth.py --trials 1 --levels 0,10 --preset tiny --max-runs 12
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VHPC_CONTENTION_THRESHOLD", "off")  # interference is recorded per run instead

from vhpclib import stats  # noqa: E402


def inventory(path: Path, levels: list[float], cpus: float | None, period_us: int) -> Path:
    """This machine and one throttled copy per level (the shape of inventories/ground-truth.yml)."""
    import yaml

    here = [{"name": "localhost", "local": True}]
    envs = {"local": {"label": "local", "vmm": "unknown", "baseline": True, "vcpu_pinning": "unknown",
                      "hosts": here, "mpi": {"flavour": "intel"}}}
    for level in levels:
        section = {"cpu_loss_pct": level, "period_us": period_us, **({"cpus": cpus} if cpus else {})}
        envs[f"throttled-{level:g}"] = {"label": f"throttled-{level:g}", "vcpu_pinning": "unknown", "hosts": here,
                                        "mpi": {"flavour": "intel"}, "throttle": section}
    path.write_text(yaml.safe_dump({"name": "ground-truth-bench", "environments": envs}, sort_keys=False))
    return path


def real_trial(inv: Path, store_root: Path, level: float, trial: int, args: argparse.Namespace) -> dict:
    """One adaptive, interleaved comparison local vs throttled-<level>: interval, truth, seconds."""
    from vhpclib.params import AppParams
    from vhpclib.stages.context import StageContext
    from vhpclib.stages.driver import run_stage
    from vhpclib.store import RawStore

    env = f"throttled-{level:g}"
    campaign = f"gt-{level:g}-t{trial}"
    store = RawStore(store_root)
    params = AppParams(workloads=("blockss",), blockss_preset=args.preset, ci_target_pct=args.ci_target,
                       min_runs=args.min_runs, max_runs=args.max_runs, budget_s=args.budget,
                       interleave=(env,), interleave_seed=1000 + trial)
    t0 = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with StageContext.open(inv, "local", campaign, store=store) as ctx:
            result = run_stage(ctx, "single-node", params, progress=False)
    seconds = time.monotonic() - t0
    outcome = next(o for o in result.stopping if o.environment == env and o.unit == "%")
    truths, baseline_times = [], []
    for name, sink in ((env, truths), ("local", baseline_times)):
        for run in store.runs(campaign, name, "single-node"):
            execution = run.record.execution
            if run.record.kind != "run" or execution is None:
                continue
            if name == env and execution.injected and execution.injected.overhead_pct is not None:
                sink.append(execution.injected.overhead_pct)
            elif name == "local" and run.status == "complete":
                rows = run.result_rows() or []
                if rows and rows[0].get("time_s"):
                    sink.append(float(rows[0]["time_s"]))
    truth = 0.0 if level == 0 else (statistics.median(truths) if truths else float("nan"))
    covered = outcome.low <= truth <= outcome.high
    return {"level": level, "trial": trial, "estimate": outcome.estimate, "low": outcome.low, "high": outcome.high,
            "truth": truth, "truth_runs": len(truths), "covered": covered, "detected": covered and outcome.low > 0,
            "excludes_zero": outcome.low > 0 or outcome.high < 0, "runs": outcome.runs, "seconds": seconds,
            "measuring_s": seconds, "reason": outcome.reason, "verdict": outcome.verdict,
            "baseline_times": baseline_times}


# ---------------------------------------------------------------- simulation

def recorded_noise(extra: list[list[float]]) -> np.ndarray:
    """Log residuals (around each environment's median) of every blockss single-node run recorded here."""
    groups: dict[str, list[float]] = {}
    for path in sorted((ROOT / "data/raw").glob("*/*/single-node/blockss-*/result.json")):
        try:
            row = json.loads(path.read_text())["rows"][0]
        except (OSError, ValueError, KeyError, IndexError):
            continue
        if row.get("verified") and row.get("time_s"):
            groups.setdefault(str(path.parents[2]), []).append(float(row["time_s"]))
    out: list[float] = []
    for times in [*groups.values(), *extra]:
        if len(times) >= 3:
            logs = np.log(np.asarray(times, dtype=float))
            out += list(logs - np.median(logs))
    return np.asarray(out)


def simulate(noise: np.ndarray, truth_pct: float, trials: int, args: argparse.Namespace, seed: int) -> dict:
    """The adaptive stopping rule on resampled recorded noise: coverage, detection, runs used."""
    rng = np.random.default_rng(seed)
    schedule = stats.LookSchedule.geometric(args.min_runs, args.max_runs, confidence=0.95)
    n_max = schedule.looks[-1]
    base = np.exp(rng.choice(noise, size=(trials, n_max)))
    other = (1 + truth_pct / 100) * np.exp(rng.choice(noise, size=(trials, n_max)))

    def bounds_at(n: int, level: float):
        return stats.ratio_bounds(base[:, :n], other[:, :n], level)

    seq = stats.run_sequential(bounds_at, schedule, args.ci_target)
    low, high = 100 * (seq.low - 1), 100 * (seq.high - 1)
    covered = (low <= truth_pct) & (truth_pct <= high)
    runs = np.asarray(schedule.looks)[seq.look]
    return {"covered": int(covered.sum()), "detected": int((covered & (low > 0)).sum()),
            "excludes_zero": int(((low > 0) | (high < 0)).sum()), "trials": trials,
            "median_runs": float(np.median(runs))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="0,5,10,20", help="injected CPU losses in %%, comma-separated")
    ap.add_argument("--trials", type=int, default=5, help="real trials per level (10 for the A/A level)")
    ap.add_argument("--aa-trials", type=int, default=None, help="real trials at 0 %% (default: 2 x --trials)")
    ap.add_argument("--sim-trials", type=int, default=2000, help="simulated experiments per level")
    ap.add_argument("--preset", default="small", help="blockss preset (tiny for a quick run)")
    ap.add_argument("--ci-target", type=float, default=3.0, help="adaptive target half-width (%%)")
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=60)
    ap.add_argument("--budget", type=float, default=900.0, help="seconds of measuring per trial")
    ap.add_argument("--cpus", type=float, default=None, help="CPUs the quota is a share of (default: all)")
    ap.add_argument("--period-us", type=int, default=100_000)
    ap.add_argument("--no-real", action="store_true", help="simulation only (no root needed)")
    args = ap.parse_args()
    levels = [float(v) for v in args.levels.split(",")]
    losses_to_overhead = {lv: 100 * (1 / (1 - lv / 100) - 1) for lv in levels}

    real: list[dict] = []
    if not args.no_real:
        with tempfile.TemporaryDirectory(prefix="vhpc-gt-") as tmp:
            inv = inventory(Path(tmp) / "inventory.yml", levels, args.cpus, args.period_us)
            for level in levels:
                count = (args.aa_trials or 2 * args.trials) if level == 0 else args.trials
                for trial in range(1, count + 1):
                    r = real_trial(inv, Path(tmp) / "raw", level, trial, args)
                    real.append(r)
                    print(f"real loss={level:g}% trial={trial}: overhead {r['estimate']:.2f} % "
                          f"[{r['low']:.2f}, {r['high']:.2f}] truth {r['truth']:.2f} % ({r['truth_runs']} runs) "
                          f"covered={r['covered']} runs={r['runs']} {r['seconds']:.0f} s ({r['reason']}; "
                          f"{r['verdict']})", flush=True)

    noise = recorded_noise([r["baseline_times"] for r in real])
    print(f"noise: {noise.size} recorded runs, robust sd {1.4826 * np.median(np.abs(noise)) * 100:.2f} % "
          f"(log residuals)")
    sim: dict[float, dict] = {}
    for i, level in enumerate(levels):
        truths = [r["truth"] for r in real if r["level"] == level and r["truth"] == r["truth"]]
        truth = statistics.median(truths) if truths and level else (0.0 if level == 0 else
                                                                     losses_to_overhead[level])
        sim[level] = {**simulate(noise, truth, args.sim_trials, args, seed=7 + i), "truth": truth}
        s = sim[level]
        print(f"sim loss={level:g}% truth={truth:.2f} %: covered {s['covered']}/{s['trials']} "
              f"detected {s['detected']}/{s['trials']} excludes_zero {s['excludes_zero']}/{s['trials']} "
              f"median runs {s['median_runs']:g}", flush=True)

    def frac(k: int, n: int) -> str:
        return f"{k / n:.3f}" if n else "nan"

    cov_real = frac(sum(r["covered"] for r in real), len(real))
    cov_sim = frac(sum(s["covered"] for s in sim.values()), sum(s["trials"] for s in sim.values()))

    def detected(level: float) -> str:
        mine = [r for r in real if r["level"] == level]
        return f"{sum(r['detected'] for r in mine)}/{len(mine)}"

    aa = [r for r in real if r["level"] == 0]
    ten = [r["seconds"] for r in real if r["level"] == 10]
    print(f"coverage_real={cov_real} coverage_sim={cov_sim} detected_5pct={detected(5)} "
          f"detected_10pct={detected(10)} false_positive_aa={sum(r['excludes_zero'] for r in aa)}/{len(aa)} "
          f"median_machine_s_10pct={statistics.median(ten) if ten else float('nan'):.0f}")


if __name__ == "__main__":
    main()
