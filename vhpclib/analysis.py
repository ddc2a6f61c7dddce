"""Pure DataFrame -> DataFrame analysis of tidy benchmark tables (Tables 2/3, Figures 2-4).

Every result column carries its unit in its name (``latency_usec``, ``time_s``,
``overhead_pct``...). Functions never print; they warn (``warnings.warn``) when
they drop invalid or unverified rows so the caller sees what was excluded.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def ideal_efficiency(parallel_s: ArrayLike, duplicated_s: ArrayLike, p: ArrayLike,
                     p_base: ArrayLike = 1) -> np.ndarray | float:
    """Algorithmic efficiency limit when part of the work is duplicated in every process.

    ``parallel_s`` (P) is the time of the perfectly divisible part and
    ``duplicated_s`` (D) the time every process repeats, both measured at the
    base process count ``p_base`` (p0). With perfect communication, the time at
    ``p`` processes is ``P*p0/p + D``, so relative to p0:

        E_ideal(p) = T(p0)*p0 / (T(p)*p) = (P + D) / (P + D*p/p0)

    Works on scalars and numpy arrays (broadcast); returns a float for scalar input.
    """
    P = np.asarray(parallel_s, dtype=float)
    D = np.asarray(duplicated_s, dtype=float)
    pp = np.asarray(p, dtype=float)
    p0 = np.asarray(p_base, dtype=float)
    out = (P + D) / (P + D * pp / p0)
    return float(out) if np.ndim(out) == 0 else out


# --------------------------------------------------------------------------------------------
# everything below is added after ideal_efficiency (kept first: another module imports it)

import warnings  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402

import pandas as pd  # noqa: E402

from vhpclib.median_coverage import (coverage_text, interval_label, order_statistic_ci,  # noqa: E402,F401
                               repetitions_for)
from vhpclib.names import Stage  # noqa: E402
from vhpclib.reference import load_reference, paper_label, paper_workload  # noqa: E402
from vhpclib.verdict import verdict  # noqa: E402

PLACEMENTS: tuple[str, ...] = ("intra-socket", "inter-socket", "inter-node")
ENV_KEYS = ["environment", "label"]
APP_KEYS = ["workload", "problem", "nprocs", "threads_per_proc"]
BOOTSTRAP_RESAMPLES = 4999
BOOTSTRAP_SEED = 20110525  # fixed: the same data always gives the same interval


# ---------------------------------------------------------------- statistics

def median_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Median and a distribution-free confidence interval: ``(median, low, high, n)``.

    The interval is the binomial order-statistic interval of :func:`order_statistic_ci`
    (exact, deterministic, no normality assumption) rather than a bootstrap, because
    benchmark repetitions are few (3-10) and skewed by noise, where a percentile
    bootstrap of the median is discrete and under-covers. NaNs are dropped; n=1
    gives NaN bounds; n=0 gives all NaN.
    """
    x = np.sort(np.asarray(list(values), dtype=float))
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    med = float(np.median(x))
    if n == 1:
        return med, float("nan"), float("nan"), 1
    j, k, _ = order_statistic_ci(n, confidence)
    return med, float(x[j]), float(x[k]), n


def _summarise(df: pd.DataFrame, keys: list[str], value: str, out: str,
               confidence: float = 0.95) -> pd.DataFrame:
    """Median + CI + n + coverage of ``value`` per group, columns ``out``, ``out_ci_low``..."""
    rows = []
    for key, grp in df.groupby(keys, sort=True, dropna=False):
        med, lo, hi, n = median_ci(grp[value], confidence)
        cov = order_statistic_ci(n, confidence)[2] if n >= 2 else float("nan")
        rows.append((*(key if isinstance(key, tuple) else (key,)), med, lo, hi, n, cov))
    return pd.DataFrame(rows, columns=[*keys, out, f"{out}_ci_low", f"{out}_ci_high", "n",
                                       "ci_coverage"])


# ---------------------------------------------------------------- input hygiene

#: The one warm-up rule, applied to every median, interval, table and figure (and stated once, in the report's
#: "How to read"): the first runs of a point that all differ from the rest by the changepoint rule of
#: ``stats.warmup_length`` are left out of the statistics; they stay in the raw store and are drawn, marked, in
#: the distribution figures.
WARMUP_RULE = ("the first runs of a point that all lie more than 4 robust standard deviations to one side of the "
               "rest (at most a quarter of the runs) are a warm-up: left out of every median, interval, table and "
               "figure, kept in the raw store, drawn as crosses in the distribution figures")


def without_warmup(frame: pd.DataFrame, keys: list[str], value: str, what: str) -> pd.DataFrame:
    """``frame`` without the runs the warm-up rule (``WARMUP_RULE``) finds per group of ``keys`` on ``value``;
    warns naming them. Every row of a warm-up run goes (all message sizes of an IMB run)."""
    from .stats import mark_warmup  # scipy: only where a table is summarised

    rows = frame[frame[value].notna()]
    if not len(rows) or "repetition" not in rows:
        return frame
    per_run = rows.groupby([*keys, "run_id"], as_index=False, dropna=False).agg(
        **{value: (value, "median"), "repetition": ("repetition", "min")})
    marked = mark_warmup(per_run, keys, value)
    warm = marked[marked["warmup"]]
    if not len(warm):
        return frame
    warnings.warn(f"warm-up left out of the {what} statistics: "
                  + ", ".join(sorted(f"{r.run_id} ({_where(r)})" for r in warm.itertuples())),
                  stacklevel=3)
    return frame[~_run_keys(frame).isin(set(_run_keys(warm)))]


def _where(row: object) -> str:
    return ", ".join(str(getattr(row, k)) for k in ("environment", "stage") if hasattr(row, k))


def _run_keys(frame: pd.DataFrame) -> pd.Series:
    """Environment, stage and run id: run ids repeat across environments and stages (``...-r01`` in each)."""
    stage = frame["stage"].astype(str) + "/" if "stage" in frame else ""
    return frame["environment"].astype(str) + "/" + stage + frame["run_id"].astype(str)


def valid_micro(micro: pd.DataFrame, benchmark: str = "PingPong", *, exclude_warmup: bool = True) -> pd.DataFrame:
    """Rows of one benchmark from complete runs only, warm-up runs left out (``WARMUP_RULE``, on the
    0-byte latency); warns naming the runs left out."""
    bad = micro[micro["status"] != "complete"]
    if len(bad):
        warnings.warn("excluded microbenchmark runs not complete: "
                      + ", ".join(sorted(map(str, bad["run_id"].unique()))), stacklevel=3)
    ok = micro[(micro["status"] == "complete") & (micro["benchmark"] == benchmark)]
    if exclude_warmup and len(ok):
        zero = ok[ok["bytes"] == ok["bytes"].min()]
        keep = without_warmup(zero, ["environment", "placement"], "t_avg_usec", "microbenchmark")
        runs = _run_keys(ok)
        ok = ok[runs.isin(set(_run_keys(keep))) | ~runs.isin(set(_run_keys(zero)))]
    return ok


def valid_apps(apps: pd.DataFrame, *, exclude_warmup: bool = True) -> pd.DataFrame:
    """Verified application runs with a time, warm-up runs left out (``WARMUP_RULE``); warns naming the runs
    left out."""
    verified = apps["verified"].astype("boolean").fillna(False).astype(bool)
    bad = apps[~verified | apps["time_s"].isna()]
    if len(bad):
        names = sorted({f"{r.run_id} ({r.workload}, {r.environment})" for r in bad.itertuples()})
        warnings.warn("excluded unverified/invalid application runs: " + ", ".join(names),
                      stacklevel=3)
    ok = apps[verified & apps["time_s"].notna()]
    if exclude_warmup and len(ok):
        keys = [k for k in ["environment", "stage", *APP_KEYS] if k in ok]
        ok = without_warmup(ok, keys, "time_s", "application")
    return ok


def _sort_placements(df: pd.DataFrame) -> pd.DataFrame:
    order = {p: i for i, p in enumerate(PLACEMENTS)}
    return (df.assign(_p=df["placement"].map(order).fillna(len(order)))
              .sort_values([*ENV_KEYS, "_p"], kind="stable").drop(columns="_p")
              .reset_index(drop=True))


# ---------------------------------------------------------------- Table 2 / Figure 2

def latency_table(micro: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Table 2: 0-byte PingPong one-way latency per environment x placement.

    One value per run (repetition); columns ``latency_usec`` (median over runs),
    ``latency_usec_ci_low/high``, ``n``, ``ci_coverage``, ``ratio_to_intra_socket``
    (median / the same environment's intra-socket median; NaN without intra-socket).
    """
    pp = valid_micro(micro)
    zero = pp[pp["bytes"] == 0]
    out = _summarise(zero, [*ENV_KEYS, "placement"], "t_avg_usec", "latency_usec", confidence)
    intra = out[out["placement"] == "intra-socket"].set_index("environment")["latency_usec"]
    out["ratio_to_intra_socket"] = out["latency_usec"] / out["environment"].map(intra)
    return _sort_placements(out)


def throughput_curves(micro: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Figure 2: PingPong throughput per environment x placement x message size.

    ``gbytes_per_sec`` = IMB's ``mbytes_per_sec`` / 1000 (10^9 B/s), median over
    runs with CI; 0-byte rows are dropped (no throughput).
    """
    pp = valid_micro(micro)
    pp = pp[pp["bytes"] > 0].assign(gbytes_per_sec=lambda d: d["mbytes_per_sec"] / 1000.0)
    out = _summarise(pp, [*ENV_KEYS, "placement", "bytes"], "gbytes_per_sec", "gbytes_per_sec",
                     confidence)
    return _sort_placements(out).sort_values([*ENV_KEYS, "placement", "bytes"],
                                             key=_placement_key).reset_index(drop=True)


def _placement_key(col: pd.Series) -> pd.Series:
    if col.name == "placement":
        return col.map({p: i for i, p in enumerate(PLACEMENTS)}).fillna(len(PLACEMENTS))
    return col


def peak_throughput(micro: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Peak PingPong throughput: the maximum over message sizes of each run, then median+CI.

    Taking the peak per run (not the peak of the median curve) keeps the
    statistic one number per independent run. ``bytes_at_peak`` is the median
    size at which runs peaked.
    """
    pp = valid_micro(micro)
    pp = pp[pp["bytes"] > 0].assign(gbytes_per_sec=lambda d: d["mbytes_per_sec"] / 1000.0)
    if pp.empty:
        return pd.DataFrame(columns=[*ENV_KEYS, "placement", "peak_gbytes_per_sec",
                                     "peak_gbytes_per_sec_ci_low", "peak_gbytes_per_sec_ci_high",
                                     "n", "ci_coverage", "bytes_at_peak"])
    idx = pp.groupby([*ENV_KEYS, "placement", "run_id"])["gbytes_per_sec"].idxmax()
    per_run = pp.loc[idx]
    out = _summarise(per_run, [*ENV_KEYS, "placement"], "gbytes_per_sec", "peak_gbytes_per_sec",
                     confidence)
    at = per_run.groupby([*ENV_KEYS, "placement"])["bytes"].median().rename("bytes_at_peak")
    out = out.merge(at.reset_index(), on=[*ENV_KEYS, "placement"], how="left")
    return _sort_placements(out)


# ---------------------------------------------------------------- Table 3

def _ratio_of_medians_ci(base: np.ndarray, other: np.ndarray, confidence: float
                         ) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(other)/median(base), two independent samples.

    The same resampling as ``scipy.stats.bootstrap(..., method="percentile", paired=False)``
    with this seed (other resampled first, then base; linear quantiles), in numpy:
    importing scipy.stats costs about a second in every kernel that draws Table 3.
    """
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    o, b = np.asarray(other, dtype=float), np.asarray(base, dtype=float)
    theta = _resampled_medians(rng, o) / _resampled_medians(rng, b)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(theta, [alpha, 1 - alpha])
    return float(low), float(high)


def _resampled_medians(rng: np.random.Generator, x: np.ndarray, chunk_cells: int = 2_000_000) -> np.ndarray:
    """Medians of ``BOOTSTRAP_RESAMPLES`` resamples of ``x``, drawn in blocks of rows (memory stays bounded
    for thousands of runs; the generator yields the same numbers as one (resamples, n) draw)."""
    rows = max(1, chunk_cells // max(x.size, 1))
    out = [np.median(x[rng.integers(0, x.size, (min(rows, BOOTSTRAP_RESAMPLES - start), x.size), dtype="int64")],
                     axis=-1) for start in range(0, BOOTSTRAP_RESAMPLES, rows)]
    return np.concatenate(out)


def _match_env(df: pd.DataFrame, name: str) -> pd.Series:
    """Rows whose environment key equals ``name`` or whose label equals it (any case)."""
    return (df["environment"] == name) | (df["label"].astype(str).str.lower() == name.lower())


def overhead_table(apps: pd.DataFrame, baseline: str, stage: str | None = Stage.SINGLE_NODE,
                   confidence: float = 0.95, interference: bool = True) -> pd.DataFrame:
    """Table 3: wall time per workload x environment and overhead against ``baseline``.

    ``overhead_pct`` = (median(T_env) / median(T_baseline) - 1) * 100, the way the
    paper states overheads. Its CI is a percentile bootstrap (fixed seed) of that
    ratio of medians, resampling both environments' repetitions independently:
    it needs no normality and carries both samples' spread. Percentile, not BCa,
    because BCa's jackknife breaks on the tied, tiny samples benchmarks give. With
    3 vs 3 runs the interval is about [min/max, max/min], i.e. conservative.
    ``significant`` is True only when the interval excludes 0. ``baseline`` is an
    environment key or label (case-insensitive); runs are matched on workload,
    problem, nprocs and threads_per_proc. Runs the interference rule excludes (``interference_rule``)
    are left out unless ``interference`` is False; ``verdict`` says what the interval lets a reader
    conclude (``vhpclib.verdict``).
    """
    ok = valid_apps(apps)
    if stage is not None:
        ok = ok[ok["stage"] == stage]
    if interference:
        ok = interference_rule(ok).kept
    times = _summarise(ok, [*APP_KEYS, *ENV_KEYS], "time_s", "time_s", confidence)
    times["baseline"] = baseline
    for col in ("overhead_pct", "overhead_pct_ci_low", "overhead_pct_ci_high"):
        times[col] = np.nan
    times["significant"] = False
    base_rows = ok[_match_env(ok, baseline)]
    for i, row in times.iterrows():
        sel = np.ones(len(ok), dtype=bool)
        bsel = np.ones(len(base_rows), dtype=bool)
        for k in APP_KEYS:
            sel &= (ok[k] == row[k]).to_numpy()
            bsel &= (base_rows[k] == row[k]).to_numpy()
        b = base_rows.loc[bsel, "time_s"].to_numpy(float)
        o = ok.loc[sel & (ok["environment"] == row["environment"]).to_numpy(), "time_s"]
        o = o.to_numpy(float)
        if b.size == 0:
            continue
        if _match_env(pd.DataFrame([row]), baseline).iloc[0]:
            times.loc[i, "overhead_pct"] = 0.0
            continue
        times.loc[i, "overhead_pct"] = (np.median(o) / np.median(b) - 1) * 100
        if b.size >= 2 and o.size >= 2:
            lo, hi = _ratio_of_medians_ci(b, o, confidence)
            times.loc[i, ["overhead_pct_ci_low", "overhead_pct_ci_high"]] = [
                (lo - 1) * 100, (hi - 1) * 100]
            times.loc[i, "significant"] = bool(lo > 1 or hi < 1)
    times["verdict"] = [
        "" if pd.isna(r.overhead_pct) or r.overhead_pct == 0 and pd.isna(r.overhead_pct_ci_low)
        else verdict(r.overhead_pct, r.overhead_pct_ci_low, r.overhead_pct_ci_high, int(r.n)).text
        for r in times.itertuples()]
    return times.reset_index(drop=True)


def aa_check(apps: pd.DataFrame, environment: str, stage: str | None = Stage.SINGLE_NODE,
             confidence: float = 0.95) -> pd.DataFrame:
    """A/A check: an environment's repetitions split in two interleaved halves, compared like A/B.

    Runs of each workload are taken in repetition order and dealt alternately to
    ``<env>/A`` (1st, 3rd, ...) and ``<env>/B`` (2nd, 4th, ...), then compared with
    :func:`overhead_table`. Interleaving makes slow drift of a shared machine hit
    both halves alike, so a harness that measures honestly gives an overhead whose
    CI contains 0 (``significant`` False). A significant A/A result means the runs
    are not exchangeable (interference, a bimodal system): an A/B overhead of that
    size is not trustworthy.
    """
    ok = valid_apps(apps, exclude_warmup=False)
    if stage is not None:
        ok = ok[ok["stage"] == stage]
    ok = interference_rule(ok).kept
    mine = ok[_match_env(ok, environment)].sort_values([*APP_KEYS, "repetition", "run_id"])
    # the warm-up rule on the environment's runs in order; the halves keep their run numbers (A = runs 1, 3, 5)
    steady = set(without_warmup(mine, [k for k in ["environment", "stage", *APP_KEYS] if k in mine], "time_s",
                                "application")["run_id"]) if len(mine) else set()
    parts = []
    for _, grp in mine.groupby(APP_KEYS, sort=True):
        even = len(grp) - len(grp) % 2  # equal halves
        a = grp.iloc[0:even:2].assign(environment=f"{environment}/A", label=f"{environment}/A")
        b = grp.iloc[1:even:2].assign(environment=f"{environment}/B", label=f"{environment}/B")
        parts += [a[a["run_id"].isin(steady)], b[b["run_id"].isin(steady)]]
    if not parts:
        return overhead_table(mine.iloc[0:0], f"{environment}/A", stage=None,
                              confidence=confidence, interference=False)
    return overhead_table(pd.concat(parts), f"{environment}/A", stage=None,
                          confidence=confidence, interference=False)


def baseline_of(environments: pd.DataFrame) -> str:
    """The environment every overhead of a campaign is relative to: the one its runs recorded as baseline
    (the first environment when none did; empty when there is none)."""
    envs = environments
    flagged = envs[envs["baseline"].astype(str).str.lower() == "true"] if len(envs) and "baseline" in envs else envs
    chosen = flagged if len(flagged) else envs
    return str(chosen["environment"].iloc[0]) if len(chosen) else ""


# ---------------------------------------------------------------- Figures 3 / 4

def efficiency_table(apps: pd.DataFrame, base_nprocs: int | None = None,
                     stage: str | None = Stage.SCALING, confidence: float = 0.95) -> pd.DataFrame:
    """Figures 3/4: parallel efficiency E(p) = T(p0)*p0 / (T(p)*p) from median times.

    p0 is ``base_nprocs`` or, per environment x workload, the smallest process
    count measured. ``efficiency_pct`` is 100*E; its CI combines the two medians'
    order-statistic intervals by interval arithmetic (T(p0) low with T(p) high
    and vice versa), so it is conservative. ``speedup`` = T(p0)/T(p). Groups
    without a run at p0 are left out.
    """
    ok = valid_apps(apps)
    if stage is not None:
        ok = ok[ok["stage"] == stage]
    times = _summarise(ok, [*ENV_KEYS, "workload", "problem", "threads_per_proc", "nprocs"],
                       "time_s", "time_s", confidence)
    nodes = ok.groupby([*ENV_KEYS, "workload", "problem", "threads_per_proc", "nprocs"])[
        "nodes"].median().rename("nodes").reset_index()
    times = times.merge(nodes, on=[*ENV_KEYS, "workload", "problem", "threads_per_proc", "nprocs"])
    parts = []
    for _, grp in times.groupby([*ENV_KEYS, "workload", "problem", "threads_per_proc"]):
        p0 = base_nprocs if base_nprocs is not None else int(grp["nprocs"].min())
        base = grp[grp["nprocs"] == p0]
        if base.empty:
            continue
        t0, t0lo, t0hi = base.iloc[0][["time_s", "time_s_ci_low", "time_s_ci_high"]]
        g = grp.copy()
        g["base_nprocs"] = p0
        g["speedup"] = t0 / g["time_s"]
        g["efficiency_pct"] = 100 * t0 * p0 / (g["time_s"] * g["nprocs"])
        g["efficiency_pct_ci_low"] = 100 * t0lo * p0 / (g["time_s_ci_high"] * g["nprocs"])
        g["efficiency_pct_ci_high"] = 100 * t0hi * p0 / (g["time_s_ci_low"] * g["nprocs"])
        parts.append(g)
    cols = [*ENV_KEYS, "workload", "problem", "threads_per_proc", "nprocs", "nodes", "base_nprocs",
            "time_s", "time_s_ci_low", "time_s_ci_high", "n", "speedup", "efficiency_pct",
            "efficiency_pct_ci_low", "efficiency_pct_ci_high"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts)[cols].reset_index(drop=True)


def performance_table(apps: pd.DataFrame, stage: str | None = Stage.SCALING,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Figure 3 (left): performance per environment x workload x processes.

    Uses NPB's ``mops_total`` column (Mop/s) when the apps table has it, giving
    ``mops_total`` median + CI; always gives ``runs_per_hour`` = 3600 / median time
    (higher is better, defined for every workload).
    """
    ok = valid_apps(apps)
    if stage is not None:
        ok = ok[ok["stage"] == stage]
    keys = [*ENV_KEYS, "workload", "problem", "threads_per_proc", "nprocs"]
    out = _summarise(ok, keys, "time_s", "time_s", confidence)
    out["runs_per_hour"] = 3600.0 / out["time_s"]
    if "mops_total" in ok.columns and ok["mops_total"].notna().any():
        mops = _summarise(ok, keys, "mops_total", "mops_total", confidence).drop(
            columns=["n", "ci_coverage"])
        out = out.merge(mops, on=keys, how="left")
    return out


def ideal_curve(apps: pd.DataFrame, workload: str = "blockss", stage: str | None = Stage.SCALING,
                nprocs: Iterable[int] | None = None) -> pd.DataFrame:
    """Figure 4's "ideal" curve per environment from the base run's phase times.

    P = median ``solve_s`` and D = median ``setup_s + extract_s`` of the runs at the
    smallest process count p0. Every process reads the matrices (``setup_s``) and
    repeats the extraction (``extract_s``), so together they are the duplicated part
    (``setup_s`` counts as 0 where a table lacks it); ``reduce_s`` is communication,
    which the ideal curve assumes perfect (free), so it is in neither P nor D.
    ``nprocs`` defaults to the process counts measured for that environment.
    Columns: environment, label, workload, nprocs, base_nprocs, parallel_s,
    duplicated_s, efficiency_ideal_pct.
    """
    ok = valid_apps(apps)
    ok = ok[ok["workload"] == workload]
    if stage is not None:
        ok = ok[ok["stage"] == stage]
    rows = []
    for (env, label), grp in ok.groupby(ENV_KEYS, sort=True):
        p0 = int(grp["nprocs"].min())
        base = grp[grp["nprocs"] == p0]
        P = float(np.nanmedian(base["solve_s"])) if base["solve_s"].notna().any() else np.nan
        setup = base["setup_s"].fillna(0) if "setup_s" in base else 0.0
        duplicated = base["extract_s"] + setup
        D = float(np.nanmedian(duplicated)) if duplicated.notna().any() else np.nan
        ps = sorted(set(nprocs) if nprocs is not None else set(grp["nprocs"].astype(int)))
        for p in ps:
            rows.append((env, label, workload, p, p0, P, D, 100 * ideal_efficiency(P, D, p, p0)))
    return pd.DataFrame(rows, columns=[*ENV_KEYS, "workload", "nprocs", "base_nprocs", "parallel_s",
                                       "duplicated_s", "efficiency_ideal_pct"])


# ---------------------------------------------------------------- paper vs measured

PVM_COLUMNS = ["artifact", "environment", "paper_environment", "quantity", "unit", "paper_value",
               "measured_value", "ratio", "n", "measured_problem", "paper_problem", "paper_hardware",
               "measured_hardware", "note"]
#: Quantities that compare across hardware and problem sizes (normalised); the rest are absolute.
NORMALISED_UNITS = ("%", "ratio")
PAPER_PROBLEMS = {"SP-MZ": "class C", "BT-MZ": "class C", "LU-MZ": "class C", "Bloss": "Bloss (10 GB jobs)"}


class _PvmRows:
    """Collects paper-vs-measured rows; one instance per call of :func:`paper_vs_measured`."""

    def __init__(self, measured_hardware: str | Mapping[str, str], paper_hardware: str | Mapping[str, str],
                 env_map: Mapping[str, str] | None) -> None:
        self.measured_hw, self.paper_hw, self.env_map = measured_hardware, paper_hardware, env_map
        self.rows: list[dict] = []

    @staticmethod
    def _hw(spec: str | Mapping[str, str], env: str) -> str:
        return spec if isinstance(spec, str) else str(spec.get(env, ""))

    def to_paper(self, label: str) -> str:
        if self.env_map and label in self.env_map:
            return self.env_map[label]
        return paper_label(label) or "BMM"

    def prep(self, df: pd.DataFrame | None) -> pd.DataFrame:
        if df is None or df.empty:
            return pd.DataFrame(columns=["label", "_paper_env", "_workload"])
        out = df.assign(_paper_env=df["label"].map(self.to_paper))
        return out.assign(_workload=out["workload"].map(paper_workload)) if "workload" in out else out

    def add(self, artifact: str, paper_env: str, quantity: str, unit: str, paper_value: float,
            measured: pd.DataFrame, col: str, note: str = "", paper_problem: str = "") -> None:
        hits = measured[measured["_paper_env"] == paper_env] if len(measured) else measured
        base = dict(artifact=artifact, paper_environment=paper_env, quantity=quantity, unit=unit,
                    paper_value=paper_value, paper_problem=paper_problem,
                    paper_hardware=self._hw(self.paper_hw, paper_env))
        if len(hits) == 0:
            self.rows.append(dict(base, environment="", measured_value=np.nan, n=np.nan, measured_problem="",
                                  note=note or "not measured here", measured_hardware=""))
        for _, m in hits.iterrows():
            self.rows.append(dict(base, environment=m["label"], measured_value=float(m[col]),
                                  n=m.get("n", np.nan), measured_problem=str(m.get("problem", "") or ""),
                                  note=note, measured_hardware=self._hw(self.measured_hw, m["label"])))


def _pvm_latency(rows: _PvmRows, latency: pd.DataFrame) -> None:
    m = rows.prep(latency)
    for _, r in load_reference("latency").iterrows():
        sel = m[m["placement"] == r["placement"]] if len(m) else m
        rows.add("table2", r["environment"], f"latency {r['placement']}", "usec", r["latency_usec"], sel,
                 "latency_usec")
        if r["placement"] != "intra-socket":
            rows.add("table2", r["environment"], f"latency ratio {r['placement']}/intra-socket", "ratio",
                     r["ratio_to_intra_socket"], sel, "ratio_to_intra_socket")


def _pvm_peaks(rows: _PvmRows, peaks: pd.DataFrame) -> None:
    m = rows.prep(peaks)
    for _, r in load_reference("throughput_peak").iterrows():
        sel = m[m["placement"] == r["placement"]] if len(m) else m
        rows.add("fig2", r["environment"], f"peak throughput {r['placement']}", "GB/s", r["peak_gbytes_per_sec"],
                 sel, "peak_gbytes_per_sec",
                 f"paper: {r['qualifier']} {r['peak_gbytes_per_sec']}" if r["qualifier"] else "")


def _pvm_overhead(rows: _PvmRows, overhead: pd.DataFrame) -> None:
    m = rows.prep(overhead)
    for _, r in load_reference("single_node").iterrows():
        sel = m[m["_workload"] == r["workload"]] if len(m) else m
        rows.add("table3", r["environment"], f"wall time {r['workload']}", "s", r["time_s"], sel, "time_s",
                 paper_problem=PAPER_PROBLEMS.get(r["workload"], ""))
    for _, r in load_reference("overhead_stated").iterrows():
        sel = m[m["_workload"] == r["workload"]] if len(m) else m
        rows.add("table3", r["environment"], f"overhead {r['workload']} vs BMM", "%", r["overhead_pct"], sel,
                 "overhead_pct", paper_problem=PAPER_PROBLEMS.get(r["workload"], ""))


def _pvm_efficiency(rows: _PvmRows, efficiency: pd.DataFrame) -> None:
    m = rows.prep(efficiency)
    for _, r in load_reference("efficiency").iterrows():
        art = "fig4" if r["workload"] == "Bloss" else "fig3"
        sel = m[(m["_workload"] == r["workload"]) & (m["nprocs"] == r["nprocs"])] if len(m) else m
        note = ""
        if len(m) and sel.empty:
            have = m[(m["_workload"] == r["workload"]) & (m["_paper_env"] == r["environment"])]
            if len(have):
                note = f"measured only up to {int(have['nprocs'].max())} processes"
        rows.add(art, r["environment"], f"efficiency {r['workload']} at {r['nodes']} nodes ({r['nprocs']} processes)",
                 "%", r["efficiency_pct"], sel, "efficiency_pct", note, PAPER_PROBLEMS.get(r["workload"], ""))


def paper_vs_measured(*, latency: pd.DataFrame | None = None,
                      peaks: pd.DataFrame | None = None,
                      overhead: pd.DataFrame | None = None,
                      efficiency: pd.DataFrame | None = None,
                      measured_hardware: str | Mapping[str, str] = "",
                      paper_hardware: str | Mapping[str, str] | None = None,
                      env_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One tidy table putting every paper number of the given artifacts beside ours.

    Inputs are outputs of :func:`latency_table`, :func:`peak_throughput`,
    :func:`overhead_table` and :func:`efficiency_table` (any may be None: that
    artifact is skipped). Measured labels map to paper labels with ``env_map``
    (default: same name case-insensitively; labels the paper does not have, such
    as ``local``, are compared with BMM; the ``paper_environment`` column says
    which). Paper rows with nothing measured keep ``measured_value`` NaN.
    ``ratio`` = measured / paper; ``n`` the runs behind the measured median;
    ``measured_problem``/``paper_problem`` the problem sizes. ``paper_hardware``
    defaults to the ``hardware`` column of the reference ``environments`` table.
    See :func:`comparable_rows` for the rows that mean something side by side.
    """
    if paper_hardware is None:
        envs = load_reference("environments")
        paper_hardware = dict(zip(envs["label"], envs["hardware"]))
    rows = _PvmRows(measured_hardware, paper_hardware, env_map)
    for frame, add in ((latency, _pvm_latency), (peaks, _pvm_peaks), (overhead, _pvm_overhead),
                       (efficiency, _pvm_efficiency)):
        if frame is not None:
            add(rows, frame)
    out = pd.DataFrame(rows.rows, columns=PVM_COLUMNS)
    out["ratio"] = out["measured_value"] / out["paper_value"]
    return out[PVM_COLUMNS]


def comparable_rows(pvm: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`paper_vs_measured` that were measured, with what their comparison means.

    Adds ``comparison``: ``difference`` (percentage points) for normalised percentages
    (overhead, efficiency), ``ratio`` for normalised ratios and for absolute values of the
    same problem, ``none`` for absolute values of different problem sizes (their ratio
    means nothing); and ``why``, the plain-words note the report prints. A/A halves
    (``local/A``...) are left out: they are one environment, not a comparison with the paper.
    """
    rows = pvm[pvm["measured_value"].notna() & ~pvm["environment"].astype(str).str.contains("/")].copy()
    kinds, why = [], []
    for _, r in rows.iterrows():
        same_hw = str(r["paper_environment"]) == str(paper_label(r["environment"]) or "")
        differs = bool(r["measured_problem"]) and bool(r["paper_problem"]) and \
            str(r["measured_problem"]) not in str(r["paper_problem"])
        if r["unit"] == "%":
            kinds.append("difference")
            why.append("percentages compare across hardware and problem sizes")
        elif r["unit"] == "ratio":
            kinds.append("ratio")
            why.append("a ratio within one environment compares across hardware")
        elif differs:
            kinds.append("none")
            why.append(f"problem sizes differ ({r['measured_problem']} vs {r['paper_problem']}): "
                       "absolute times do not compare; the overhead does")
        else:
            kinds.append("ratio")
            why.append("" if same_hw else "different hardware: the ratio puts the scales side by side, "
                                          "it is not an overhead")
    rows["comparison"], rows["why"] = kinds, why
    return rows.reset_index(drop=True)


# ---------------------------------------------------------------- interference: one stated rule

#: A run is excluded when the CPU share other processes took during it lies this many robust standard
#: deviations above the median of its stage's runs (and at least ``INTERFERENCE_FLOOR`` above it).
INTERFERENCE_Z = 3.0
INTERFERENCE_FLOOR = 0.15  # a sixth of the machine: less is within one run to the next here


class InterferenceRule:
    """Which runs the interference rule kept and excluded, and the rule in words (the report prints it)."""

    def __init__(self, kept: pd.DataFrame, excluded: pd.DataFrame, considered: int) -> None:
        self.kept, self.excluded, self.considered = kept, excluded, considered

    @property
    def text(self) -> str:
        return (f"a run is excluded when the CPU share other processes used during it (non-job CPU time / "
                f"(CPUs x wall time), recorded per run) lies more than {INTERFERENCE_Z:g} robust SDs "
                f"(1.4826 MAD, at least {INTERFERENCE_FLOOR:g}) above the median of its stage's runs")

    def line(self) -> str:
        if not self.considered:
            return "interference rule: no run recorded its interference (runs measured before it was recorded)"
        return (f"interference rule: {len(self.excluded)} of {self.considered} run(s) excluded ({self.text})")


def interference_rule(runs: pd.DataFrame) -> InterferenceRule:
    """Split ``runs`` (an apps or microbench table) by the interference rule, per stage; rows without a
    recorded ``other_share`` are always kept. Pure; warns naming the excluded runs."""
    if "other_share" not in runs.columns or runs.empty:
        return InterferenceRule(runs, runs.iloc[0:0], 0)
    share = pd.to_numeric(runs["other_share"], errors="coerce")
    out = pd.Series(False, index=runs.index)
    groups = runs["stage"] if "stage" in runs.columns else pd.Series("", index=runs.index)
    for _, idx in share.groupby(groups).groups.items():
        values = share.loc[idx].dropna()
        if values.size < 3:
            continue
        med = float(values.median())
        fence = med + max(INTERFERENCE_Z * 1.4826 * float((values - med).abs().median()), INTERFERENCE_FLOOR)
        out.loc[values.index[values > fence]] = True
    excluded = runs[out]
    if len(excluded):
        warnings.warn(f"interference rule excluded {len(excluded)} run(s): "
                      + ", ".join(sorted(map(str, excluded["run_id"].unique()))), stacklevel=3)
    return InterferenceRule(runs[~out], excluded, int(share.notna().sum()))
