"""The ``vhpc`` command. The only place that turns errors into messages and exit codes.

Exit codes: 0 success, 1 a measurement or host failed, 2 bad input
(inventory, logs, options), 130 interrupted.
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import typer

from . import paths
from .exceptions import InputError, VhpcError
from .names import Campaign, Stage
from .providers import PROVIDERS
from .review_cli import campaigns_app, compare_cmd

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure what virtualization costs an HPC cluster, reproducibly.")
run_app = typer.Typer(no_args_is_help=True, help=(
    "Run a stage of the study. A run during which another process used more than the contention threshold of a "
    "core (default 0.25 of one core over the run; per environment the inventory key contention_threshold, or "
    "VHPC_CONTENTION_THRESHOLD; 'off' disables the check) is stored invalid, with the process named. A stage "
    "that ends without the valid runs it planned exits 1 and says how to measure them (--rerun)."))
inventory_app = typer.Typer(no_args_is_help=True, help="Validate and check inventories.")
testbed_app = typer.Typer(no_args_is_help=True, help="Local multi-node testbed (network namespaces, root).")
npb_app = typer.Typer(no_args_is_help=True, help="Build and distribute NPB-MZ binaries.")
app.add_typer(run_app, name="run")
app.add_typer(inventory_app, name="inventory")
app.add_typer(testbed_app, name="testbed")
app.add_typer(npb_app, name="npb")
app.add_typer(campaigns_app, name="campaigns")
app.command("compare")(compare_cmd)
for _name, _provider in PROVIDERS.items():  # a provider's own commands (the QEMU guest's: vhpc vm up|status|down)
    if (_commands := _provider.commands()) is not None:
        app.add_typer(_commands[1], name=_commands[0])

InventoryOpt = typer.Option(paths.DEFAULT_INVENTORY, "--inventory", "-i", help="Inventory YAML.")
EnvOpt = typer.Option("local", "--env", "-e", help="Environment of the inventory.")
CampaignOpt = typer.Option(..., "--campaign", "-c", help="Campaign name (folder under data/raw).")
MeasureCampaignOpt = typer.Option(
    None, "--campaign", "-c",
    help="Campaign to measure into (folder under data/raw). Default: a new campaign named by the UTC time. "
         "Naming an existing campaign adds runs to it (resumes it), only if its earlier runs of this "
         "environment ran on the same hosts.")
AllowMixedOpt = typer.Option(False, "--allow-mixed",
                             help="Add runs to a campaign whose earlier runs ran on other hosts (recorded).")
AllowCommittedOpt = typer.Option(False, "--allow-committed",
                                 help="Add runs to a campaign committed to git (never done by default).")
ReadCampaignOpt = typer.Option(None, "--campaign", "-c",
                               help="Campaign to read (default: the one measured last).")


def _err(message: str) -> None:
    print(f"vhpc: error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"vhpc: warning: {message}", file=sys.stderr)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return str(value)


# ------------------------------------------------------------------ parse

#: Largest log `vhpc parse` reads (IMB up to 1 GB messages prints a few hundred kB; NPB far less).
MAX_LOG_BYTES = 64 * 1024 * 1024


def _read_log(file: Path) -> str:
    """A log's text: a regular file of at most MAX_LOG_BYTES (a FIFO or /dev/zero is refused, not read)."""
    import os
    import stat

    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=str(file)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InputError("not a regular file (a log is a file on disk)", file=str(file))
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > MAX_LOG_BYTES:
            raise InputError(f"larger than {MAX_LOG_BYTES // 2**20} MiB: not a benchmark log", file=str(file))
        try:
            data = fh.read(MAX_LOG_BYTES + 1)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=str(file)) from None
    if len(data) > MAX_LOG_BYTES:
        raise InputError(f"larger than {MAX_LOG_BYTES // 2**20} MiB: not a benchmark log", file=str(file))
    return data.decode(errors="replace")


@app.command("parse")
def parse_cmd(kind: str = typer.Argument(..., help="Output format: imb, npb, app or mzdemo."),
              files: list[Path] = typer.Argument(..., help="Log files.")) -> None:
    """Parse tool logs into CSV on stdout (warnings and errors on stderr)."""
    from .exceptions import ParseError
    from .parsers import get_parser

    parser = get_parser(kind)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    header = [parser.COLUMNS]  # written before the first row: a file that fails alone leaves stdout empty
    failed = False
    for file in files:
        try:
            text = _read_log(file)
            result = parser.parse(text, str(file))
        except ParseError as exc:
            _err(f"{file}: {exc.message}" + (f" (line {exc.line})" if exc.line else ""))
            failed = True
            continue
        except InputError as exc:
            _err(str(exc))
            failed = True
            continue
        for warning in result.warnings:
            _warn(str(warning))
        for record in result.records:
            if header:
                writer.writerow(header.pop())
            writer.writerow([_csv_value(record.get(c)) for c in parser.COLUMNS])
    sys.stdout.flush()
    if failed:
        raise typer.Exit(2)


# ------------------------------------------------------------------ run

def _report(summary) -> None:
    from .paths import figures_dir
    from .run_report import result_table, shortfall

    for line in summary.lines():
        print(line)
    for line in result_table(summary.campaign, summary.result.stage, summary.environment):
        print(line)
    if summary.result.stopped:
        _err(f"{summary.environment}: {summary.result.stopped}")
    if summary.result.measured:
        print(f"figures and report: vhpc figures -c {summary.campaign} (writes {figures_dir(summary.campaign)}/)")
    if summary.result.bad_input:
        raise typer.Exit(2)
    short = shortfall(summary.result, summary.result.stage, summary.campaign)
    if short:
        _err(short)
    if summary.failed or short:
        raise typer.Exit(1)


RepsOpt = typer.Option(None, min=1, max=10_000, help="Separate runs per point (default 6: the fewest whose "
                                                     "min-max interval covers the median with 95 %).")
RerunOpt = typer.Option(False, help="Measure again (new runs) even if complete.")
TimeoutOpt = typer.Option(None, help="Seconds per run (default: the inventory's, else derived from the "
                                     "benchmark's stored durations).")
FiguresOpt = typer.Option(True, help="Build and write the stage's figure files.")
ProgressOpt = typer.Option(True, help="Show a progress bar.")
CiTargetOpt = typer.Option(None, "--ci-target", metavar="PCT",
                           help="Adaptive: run until every reported quantity's 95 % interval has a half-width "
                                "<= PCT % of its value (or --max-runs / --budget is reached).")
MaxRunsOpt = typer.Option(None, "--max-runs", help="Adaptive: at most this many runs per point and environment "
                                                   "(default 60).")
BudgetOpt = typer.Option(None, "--budget", metavar="SECONDS", help="Adaptive: seconds of measuring for the stage.")
InterleaveOpt = typer.Option(None, "--interleave", metavar="ENV",
                             help="Also measure this environment, runs alternating with --env in ABBA blocks.")
WaitOpt = typer.Option(False, "--wait", help="If another vhpc is writing the campaign, wait for it instead of "
                                             "refusing.")


def _adaptive(ci_target: Optional[float], max_runs: Optional[int], budget: Optional[float],
              interleave: Optional[list[str]]) -> dict[str, Any]:
    """The adaptive-repetition and interleaving options, as stage parameters."""
    if ci_target is not None and not (math.isfinite(ci_target) and 0 < ci_target < 100):
        raise InputError(f"expected a percentage above 0 and below 100 (e.g. 5), got {ci_target}", key="--ci-target")
    return {"ci_target_pct": ci_target, "max_runs": max_runs, "budget_s": _finite("budget", budget),
            "interleave": tuple(interleave) if interleave else None}


def _finite(name: str, value: float | None) -> float | None:
    """Refuse inf/nan (and non-positive values) before anything runs."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InputError(f"must be a finite number above 0, got {value}", key=name)
    return value


def _run_stage(stage: str, inventory: Path, env: str, campaign: Optional[str], params, *, wait: bool,
               progress: bool, figures: bool, allow_mixed: bool, allow_committed: bool) -> None:
    """Measure into the campaign (a new one when none is named); its writer lock is taken before the first run."""
    from . import campaigns, stages
    from .contention import default_threshold
    from .exceptions import Interrupted
    from .run_report import resume_command

    default_threshold()  # a bad VHPC_CONTENTION_THRESHOLD is refused before anything runs
    selection = campaigns.for_measurement(_campaign_name(campaign), allow_committed=allow_committed)
    print(selection.describe(), flush=True)  # first: an interrupted call is resumed by its name
    try:
        summary = stages.run(inventory, env, selection.name, stage, params, progress=progress, figures=figures,
                             allow_mixed=allow_mixed, allow_committed=allow_committed, wait=wait)
    except (KeyboardInterrupt, Interrupted):
        global _INTERRUPTED_NOTE  # said by main() in its one "interrupted" line
        _INTERRUPTED_NOTE = f"campaign {selection.name}; resume with: {resume_command(sys.argv[1:], selection.name)}"
        raise
    _report(summary)


def _campaign_name(name: Optional[str]) -> Optional[Campaign]:
    """Every campaign name the CLI is given becomes a ``Campaign`` here, the edge (a bad one: exit 2)."""
    return Campaign.optional(name)


WorkloadOpt = typer.Option(None, "--workload", "-w", help="Workloads (default: the stage's).")
ProcessesOpt = typer.Option(None, "--processes", "-p", min=1, max=1_000_000,
                            help="Process counts (default: per node count).")

#: The stage commands: name -> what it measures (the command's help) and its own options beyond the common ones.
STAGE_COMMANDS: dict[Stage, tuple[str, dict[str, tuple[Any, Any]]]] = {
    Stage.MICROBENCH: ("IMB PingPong for every placement: raw logs, tidy table, Table 2 and Figure 2.", {}),
    Stage.SINGLE_NODE: ("Workloads on one node (Table 3): overhead vs the baseline environment, or an A/A check.", {}),
    Stage.SCALING: ("Sweep process counts across nodes (Figures 3, 4): efficiency vs the base run, ideal curve.",
                   {"processes": (Optional[list[int]], ProcessesOpt)}),
}


def _common_options() -> dict[str, tuple[Any, Any]]:
    return {"inventory": (Path, InventoryOpt), "env": (str, EnvOpt), "campaign": (Optional[str], MeasureCampaignOpt),
            "workload": (Optional[list[str]], WorkloadOpt), "repetitions": (Optional[int], RepsOpt),
            "rerun": (bool, RerunOpt), "timeout": (Optional[float], TimeoutOpt), "figures": (bool, FiguresOpt),
            "progress": (bool, ProgressOpt), "ci_target": (Optional[float], CiTargetOpt),
            "max_runs": (Optional[int], MaxRunsOpt), "budget": (Optional[float], BudgetOpt),
            "interleave": (Optional[list[str]], InterleaveOpt), "allow_mixed": (bool, AllowMixedOpt),
            "allow_committed": (bool, AllowCommittedOpt), "wait": (bool, WaitOpt)}


def _cli_type(annotation: Any) -> Any:
    """The option type of a workload parameter: lists stay lists, scalars stay scalars, anything else is text
    (the workload's model parses it: ``--msglog 0:22``). Always optional: unset means the model's default."""
    import types
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (tuple, list) and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) \
            and args[0] in (str, int, float):
        return Optional[list[args[0]]]  # type: ignore[valid-type]
    if annotation in (str, int, float, bool):
        return Optional[annotation]
    return Optional[str]


def workload_options(stage: str) -> dict[str, tuple[Any, Any, list[str]]]:
    """The CLI options of ``stage`` generated from its workloads' ``Params``: name -> (type, option, workloads).

    An option's default is None (unset: the workload's own default, said in its help); its flag is
    ``--<name>`` (dashes) unless the field names one (``json_schema_extra={"cli": "--preset"}``).
    """
    from .workloads import WORKLOADS

    out: dict[str, tuple[Any, Any, list[str]]] = {}
    for name, workload in WORKLOADS.items():
        if stage not in workload.stages:
            continue
        for key, field in workload.Params.model_fields.items():
            if key in out:
                out[key][2].append(name)
                continue
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            flag = str(extra.get("cli") or "--" + key.replace("_", "-"))
            default = field.get_default(call_default_factory=True)
            shown = ":".join(map(str, default)) if key == "msglog" else default
            if isinstance(shown, tuple):
                shown = ", ".join(map(str, shown))
            help_text = f"{field.description or key} ({name}; default: {shown})"
            out[key] = (_cli_type(field.annotation), typer.Option(None, flag, help=help_text), [name])
    return out


def _stage_command(stage: Stage) -> Any:
    """``vhpc run <stage>``: the common options, the stage's, and every option its workloads' models declare."""
    import inspect

    summary, own = STAGE_COMMANDS[stage]
    generated = workload_options(stage)
    options = {**_common_options(), **own, **{k: (t, o) for k, (t, o, _) in generated.items()}}

    def command(**values: Any) -> None:
        from . import stages

        given = {k: values.pop(k) for k in generated}
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None}
        processes = values.pop("processes", None)
        try:
            params = stages.stage_def(stage).params.build(
                workloads=tuple(values["workload"]) if values["workload"] else None,
                repetitions=values["repetitions"], rerun=values["rerun"],
                timeout_s=_finite("timeout", values["timeout"]),
                **({"processes": tuple(processes)} if processes else {}),
                **_adaptive(values["ci_target"], values["max_runs"], values["budget"], values["interleave"]), **given)
        except InputError as exc:  # a workload's parameter is named as the option the user typed
            if exc.key in generated:
                raise InputError(exc.message, key=generated[exc.key][1].param_decls[0]) from None
            raise
        _run_stage(stage, values["inventory"], values["env"], values["campaign"], params, wait=values["wait"],
                   progress=values["progress"], figures=values["figures"], allow_mixed=values["allow_mixed"],
                   allow_committed=values["allow_committed"])

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=t)
         for k, (t, o) in options.items()])
    command.__annotations__ = {k: t for k, (t, _) in options.items()}
    command.__doc__ = summary
    command.__name__ = f"run_{stage.replace('-', '_')}_cmd"
    return command


def register_stage_commands() -> None:
    """(Re)build ``vhpc run <stage>`` from the workloads registered now (a plugin's options included)."""
    run_app.registered_commands = [c for c in run_app.registered_commands if c.name not in STAGE_COMMANDS]
    for stage in STAGE_COMMANDS:
        run_app.command(str(stage))(_stage_command(stage))


# ------------------------------------------------------------------ inventory

@inventory_app.command("validate")
def inventory_validate(inventory: Path = typer.Argument(..., help="Inventory YAML.")) -> None:
    """Validate an inventory without connecting anywhere."""
    from .config import load_inventory

    inv = load_inventory(inventory)
    for name, env in inv.environments.items():
        mark = " (baseline)" if name == inv.baseline else ""
        print(f"{name}: label={env.label} vmm={env.vmm} hosts={len(env.hosts)} "
              f"mpi={env.mpi.flavour} host_keys={env.host_key_policy}{mark}")


@inventory_app.command("check")
def inventory_check(inventory: Path = typer.Argument(..., help="Inventory YAML."),
                    env: Optional[list[str]] = typer.Option(None, "--env", "-e", help="Only these environments."),
                    campaign: Optional[str] = typer.Option(
                        None, "--campaign", "-c",
                        help="Store the fingerprints in this campaign (default: stored nowhere)."),
                    timeout: Optional[float] = typer.Option(None, help="Seconds per host.")) -> None:
    """Connect to every host in parallel and print one row per host (fingerprints stored only with -c)."""
    from rich.console import Console

    from .config import load_inventory
    from .inventory_check import check_inventory, render_table

    campaign = _campaign_name(campaign)
    _finite("timeout", timeout)
    inv = load_inventory(inventory)
    for name in env or []:
        inv.environment(name)
    report = check_inventory(inv, env or None, campaign, timeout=timeout)
    # the terminal's width when there is one; piped, a width that keeps one row per host
    Console(width=None if sys.stdout.isatty() else 200).print(render_table(report))
    for line in report.problems():
        _warn(line)
    raise typer.Exit(report.exit_code)


# ------------------------------------------------------------------ testbed

TestbedName = typer.Option("vhpc", "--name", help="Testbed name (1-8 of a-z, 0-9).")


@testbed_app.command("up")
def testbed_up(nodes: int = typer.Option(2, "--nodes", "-n", min=1, help="Number of nodes."),
               rate: Optional[str] = typer.Option(None, help="Shape every node link, e.g. 1gbit, 100mbit."),
               slurm: bool = typer.Option(False, "--slurm", help="Also start a private Slurm cluster over the "
                                                                  "nodes (inventory environment 'slurm')."),
               name: str = TestbedName) -> None:
    """Create N network-namespace nodes with an sshd each, and write their inventory (root)."""
    from . import testbed

    info = testbed.up(nodes, name=name, rate=rate, slurm=slurm)
    for node in info.nodes:
        print(f"{node.hostname}: {node.address} (namespace {node.namespace}, sshd pid {node.sshd_pid})")
    if info.slurm_conf:
        print(f"slurm: SLURM_CONF={info.slurm_conf}")
    print(f"inventory: {info.inventory}")
    print(f"up in {info.seconds:.2f} s" + (f", links shaped to {rate}" if rate else ""))


@testbed_app.command("status")
def testbed_status(name: str = TestbedName) -> None:
    """Show the testbed's nodes, sshd processes, link shaping and byte counters."""
    from . import testbed

    st = testbed.status(name)
    for n in st.nodes:
        print(f"{n.hostname} {n.address} namespace={n.namespace}{'' if n.namespace_present else ' (missing)'} "
              f"sshd={n.sshd_pid} {'alive' if n.sshd_alive else 'DEAD'} uts={n.uts_hostname} "
              f"link={n.rate or 'unshaped'} tx={n.tx_bytes} rx={n.rx_bytes}")
    for problem in st.problems:
        _warn(problem)
    for leftover in st.leftovers:
        _warn(f"leftover: {leftover}")
    if not st.up:
        raise typer.Exit(1)


@testbed_app.command("down")
def testbed_down(name: str = TestbedName) -> None:
    """Remove everything the testbed created (also after a crash); idempotent."""
    from . import testbed

    removed = testbed.down(name)
    for item in removed:
        print(f"removed {item}")
    if not removed:
        print("nothing to remove")


@testbed_app.command("shape")
def testbed_shape(rate: Optional[str] = typer.Option(None, help="New rate (e.g. 1gbit); omit to remove shaping."),
                  name: str = TestbedName) -> None:
    """Change or remove the rate ceiling (tbf) on every node link."""
    from . import testbed

    testbed.shape(name, rate)
    print(f"links of {name}: " + (f"shaped to {rate}" if rate else "unshaped"))


# ------------------------------------------------------------------ npb

@npb_app.command("build")
def npb_build(inventory: Path = InventoryOpt, env: str = EnvOpt, campaign: str = CampaignOpt,
              benchmark: list[str] = typer.Option(["sp-mz", "bt-mz"], "--benchmark", "-b"),
              npb_class: str = typer.Option("C", "--class"),
              nprocs: Optional[list[int]] = typer.Option(None, "--nprocs", help="NPB 3.3: process counts to bake in."),
              build_id: Optional[str] = typer.Option(None, "--build-id")) -> None:
    """Build NPB-MZ on the environment's launch host; binaries and sha256 go to the raw store."""
    from .config import load_inventory
    from .npb.campaign import build_in_environment

    inv = load_inventory(paths.project_path(inventory))
    build = build_in_environment(inv, env, campaign, benchmarks=benchmark, klass=npb_class, nprocs=nprocs or None,
                                 build_id=build_id)
    for b in build.binaries:
        print(f"{b.name} {b.sha256} {b.size}")


@npb_app.command("distribute")
def npb_distribute(inventory: Path = InventoryOpt, env: str = EnvOpt, campaign: str = CampaignOpt,
                   build_id: Optional[str] = typer.Option(None, "--build-id")) -> None:
    """Copy the build this environment runs to its hosts and verify every checksum."""
    from .config import load_inventory
    from .npb.campaign import build_for, distribute_to_environment

    inv = load_inventory(paths.project_path(inventory))
    for d in distribute_to_environment(inv, env, build_for(inv, env, campaign, build_id=build_id)):
        rec = d.record()
        print(f"{rec['binary_host']}: {rec['binary']} sha256 {rec['sha256']} verified")


# ------------------------------------------------------------------ a known slowdown

@app.command("inject", context_settings={"allow_interspersed_args": False})
def inject_cmd(command: list[str] = typer.Argument(..., help="The command to run (after --)."),
               cpu_loss: float = typer.Option(..., "--cpu-loss", help="Percent of the CPUs' time taken away."),
               cpus: Optional[float] = typer.Option(None, help="CPUs the command keeps busy (default: all this "
                                                               "process may use)."),
               period_us: int = typer.Option(100_000, "--period-us", help="CFS bandwidth period (us).")) -> None:
    """Run a command with a known CPU loss injected (a cgroup CPU bandwidth limit); print what the cgroup measured.

    The ground truth the throttled environment measures against: the line on stderr gives the
    injected overhead the cgroup counted (CPU time held back / CPU time used).
    """
    import os
    import tempfile

    from .injector import plan_limit, run_limited

    limit = plan_limit(cpu_loss, cpus if cpus is not None else float(len(os.sched_getaffinity(0))), period_us)
    with tempfile.TemporaryDirectory(prefix="vhpc-inject-") as folder:
        status, accounting, said = run_limited(command, limit, cwd=folder)
    sys.stderr.write(said)
    if accounting is not None:
        measured = accounting.overhead_pct
        print(f"vhpc: injected {limit.loss_pct:g} % of {limit.cpus:g} CPU(s) (quota {limit.quota_us} us per "
              f"{limit.period_us} us; nominal overhead {limit.nominal_overhead_pct:.2f} %): measured "
              + (f"{measured:.2f} %" if measured is not None else "nothing (no CPU used)")
              + f" = {accounting.throttled_s:.3f} s held back of {accounting.usage_s:.3f} s used, "
              f"{accounting.nr_throttled}/{accounting.nr_periods} periods throttled", file=sys.stderr)
    raise typer.Exit(status)


@app.command("deps")
def deps_cmd(inventory: Path = InventoryOpt,
             env: Optional[list[str]] = typer.Option(None, "--env", "-e", help="Only these environments.")) -> None:
    """Print the Debian packages the inventory's environment providers need, one per line (make asks this)."""
    from .config import load_inventory
    from .providers import system_packages

    inv = load_inventory(paths.project_path(inventory))
    for package in system_packages(inv, env or None):
        print(package)


# ------------------------------------------------------------------ tables and figures

@app.command("tables")
def tables_cmd(campaign: Optional[str] = ReadCampaignOpt,
               reparse: bool = typer.Option(False, help="Extract every run again from its logs with the current "
                                                         "parsers (raw data is never written).")) -> None:
    """Rebuild the tidy tables of a campaign from its raw runs (every declared table: docs/tables.md)."""
    from .campaigns import for_reading
    from .tables import write_tables

    campaign = for_reading(_campaign_name(campaign))
    written, warnings_ = write_tables(campaign, reparse=reparse)
    for warning in warnings_:
        _warn(warning)
    for path in written:
        print(path)


@app.command("figures")
def figures_cmd(campaign: Optional[str] = ReadCampaignOpt, progress: bool = ProgressOpt) -> None:
    """All paper figures and the report of a campaign, from its stored runs; never measures."""
    import time

    from . import campaigns
    from .notebook_runner import run_pipeline
    from .overview import require_runs

    t0 = time.perf_counter()
    name = require_runs(campaigns.for_reading(_campaign_name(campaign)))
    print(f"campaign: {name}" + ("" if campaign else " (the one measured last; -c to choose)"))
    run_pipeline(None, name, progress=progress)
    print(f"figures: {time.perf_counter() - t0:.1f} s")


@app.command("paper-figures")
def paper_figures_cmd(inventory: Path = InventoryOpt, campaign: Optional[str] = ReadCampaignOpt,
                      env: Optional[list[str]] = typer.Option(None, "--env", "-e", help="Only these environments."),
                      rerun: bool = typer.Option(False, "--rerun", help="Measure every stage (resuming) before the "
                                                 "figures; without --campaign: resume the last unfinished "
                                                 "re-measure, else a new campaign rerun-<UTC>."),
                      new_campaign: bool = typer.Option(False, "--new-campaign",
                                                        help="With --rerun: always start a new campaign."),
                      allow_mixed: bool = AllowMixedOpt, allow_committed: bool = AllowCommittedOpt,
                      progress: bool = ProgressOpt) -> None:
    """Measure every stage notebook if asked (--rerun), then all paper figures and figures/<campaign>/report.html."""
    import time

    from . import campaigns
    from .notebook_runner import run_pipeline

    t0 = time.perf_counter()
    campaign = _campaign_name(campaign)
    if rerun:
        if campaign is None:
            selection = campaigns.rerun_campaign(new=new_campaign)
        else:
            selection = campaigns.for_measurement(campaign, allow_committed=allow_committed)
        print(selection.describe())
        name = selection.name
    else:
        from .overview import require_runs

        name = require_runs(campaigns.for_reading(campaign))
        print(f"campaign: {name}")
    run_pipeline(inventory, name, rerun=rerun, environments=env or None, progress=progress, allow_mixed=allow_mixed)
    if rerun and name.startswith(campaigns.RERUN_PREFIX):
        campaigns.mark_rerun_finished(name)
    print(f"paper-figures: {time.perf_counter() - t0:.1f} s")


@app.command("notebook")
def notebook_cmd(name: str = typer.Argument(..., help="Notebook, by number (02) or name (02-single-node)."),
                 inventory: Optional[Path] = typer.Option(None, "--inventory", "-i", help="Inventory YAML."),
                 env: Optional[str] = typer.Option(None, "--env", "-e", help="Environment of the inventory."),
                 campaign: Optional[str] = typer.Option(
                     None, "--campaign", "-c",
                     help="Campaign (default: a new one when the notebook measures, the latest when it shows)."),
                 param: Optional[list[str]] = typer.Option(None, "--param", "-p",
                                                           help="Another parameter as name=value (YAML value)."),
                 progress: bool = ProgressOpt) -> None:
    """Execute one notebook with papermill (its executed copy goes to notebooks/executed/)."""
    from .notebook_runner import run_notebook

    values = {"inventory": str(paths.project_path(inventory).resolve()) if inventory else None, "environment": env,
              "campaign": _campaign_name(campaign)}
    out = run_notebook(name, {k: v for k, v in values.items() if v is not None}, param or [], progress=progress)
    print(f"executed copy: {out}")


# ------------------------------------------------------------------ entry point

def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"vhpc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Measure what virtualization costs an HPC cluster, reproducibly."""


def _help_width() -> None:
    """Help at the width of the terminal the user looks at, also when stdout is a pipe (rich would say 80)."""
    import os

    from typer import rich_utils

    if rich_utils.MAX_WIDTH is not None:  # TERMINAL_WIDTH was set
        return
    for fd in (1, 2, 0):
        try:
            rich_utils.MAX_WIDTH = os.get_terminal_size(fd).columns
            return
        except OSError:
            continue
    rich_utils.MAX_WIDTH = int(os.environ.get("COLUMNS", "0")) or 120


#: What an interrupted measurement adds to the one "interrupted" line: its campaign and the command resuming it.
_INTERRUPTED_NOTE = ""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input prints one line and exits 2, never a traceback.

    SIGTERM and SIGHUP unwind like Ctrl-C (running jobs are killed on the way out) and exit
    with 128 + the signal's number.
    """
    from . import lifetime
    from .exceptions import Interrupted

    from . import _interrupted_while_starting

    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on Ctrl-C unwinds (jobs killed)
    warnings.showwarning = lambda message, category, *a, **k: _warn(str(message))  # one line each
    args = sys.argv[1:] if argv is None else argv
    if not args or any(a in ("--help", "-h") for a in args):  # rich's help module costs 0.1 s: only for help
        _help_width()
    restore = lifetime.install_signal_handlers()
    lifetime.received = None
    try:
        code = _run(argv)
    finally:
        restore()
    note = f"; {_INTERRUPTED_NOTE}" if _INTERRUPTED_NOTE else ""
    if lifetime.received is not None:  # typer/Click turn a KeyboardInterrupt (ours too) into exit code 130
        signalled = Interrupted(lifetime.received)
        _err(f"{signalled}{note}")
        return signalled.exit_code
    if code == 130:
        _err(f"interrupted{note}")
    return code


def _run(argv: list[str] | None) -> int:
    """The app, with every exception turned into one line and an exit code (130: interrupted, said by main)."""
    from .exceptions import Interrupted

    args = sys.argv[1:] if argv is None else argv
    try:
        from .plugins import load_plugins

        load_plugins()  # workloads, tables and artifacts from outside vhpclib (VHPC_PLUGINS, entry points)
        if not args or args[0] == "run" or "--help" in args:  # the workloads' import only where their options show
            register_stage_commands()
        result = app(args=argv, prog_name="vhpc", standalone_mode=False)
    except typer.Abort:
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _err(message.replace("\n", " "))
        return getattr(exc, "exit_code", 2)
    except VhpcError as exc:
        for problem in getattr(exc, "problems", None) or [exc]:
            _err(str(problem).replace("\n", " "))
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt):
        return 130
    except OSError as exc:  # the data folder cannot be written: one line naming the path and what to do
        from .storage_errors import explain

        known = explain(exc)
        if known is None:
            return _internal(exc)
        _err(str(known))
        return known.exit_code
    except Exception as exc:  # a bug: still one line (VHPC_DEBUG=1 shows the traceback)
        return _internal(exc)
    return result if isinstance(result, int) else 0


def _internal(exc: BaseException) -> int:
    """A bug: still one line (VHPC_DEBUG=1 shows the traceback)."""
    import os

    if os.environ.get("VHPC_DEBUG"):
        raise exc
    detail = str(exc).splitlines()[0] if str(exc) else ""
    _err(f"internal error: {type(exc).__name__}: {detail} (VHPC_DEBUG=1 shows where; please report it)")
    return 1


def entry() -> None:
    """The ``vhpc`` program: ``main``, then a short teardown.

    Exit handlers run (jobs still registered are killed, files flushed), but the interpreter's
    module-by-module teardown of pandas, scipy and plotly (a quarter of a second) is skipped.
    """
    import atexit
    import os

    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    entry()
