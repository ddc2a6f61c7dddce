"""Ground truth for the testbed: an inter-node IMB PingPong must see the link rate it was given.

With every node link shaped to R by htb, PingPong's peak throughput must be at
most R and close to it (the recipe measured 118 MB/s at 1 gbit = 125 MB/s: TCP,
IP and Ethernet headers take ~5 %); unshaped it must be far above R.
"""

from __future__ import annotations

from pathlib import Path

from ..config import load_inventory
from ..exceptions import ParseError, TestbedError
from ..mpi import LaunchSpec, build_launch, runtime_for, shell_command
from ..parsers import get_parser
from ..remote import executor_for
from .inventory import ENVIRONMENT
from .lifecycle import info, shape
from .shaping import parse_rate


def run_pingpong(inventory: str | Path, *, msglog: tuple[int, int] = (0, 12), iterations: int = 200,
                 timeout: float = 300.0) -> list[dict]:
    """IMB PingPong between the first two hosts of the inventory's ``testbed`` environment.

    Runs mpirun on the environment's launch host (node 1 over SSH) exactly as
    the inventory says, and returns the parsed IMB records (``mbytes_per_sec`` in 10^6 B/s).
    """
    inv = load_inventory(inventory)
    env = inv.environment(ENVIRONMENT)
    if len(env.hosts) < 2:
        raise TestbedError("an inter-node PingPong needs a testbed with at least 2 nodes")
    runtime = runtime_for(env)
    imb = env.benchmarks.imb or runtime.binary("IMB-MPI1")
    spec = LaunchSpec(nprocs=2, hosts=(env.hosts[0].mpi_name, env.hosts[1].mpi_name), ppn=1,
                      report_binding=False)
    program = [imb, "PingPong", "-msglog", f"{msglog[0]}:{msglog[1]}", "-iter", str(iterations),
               "-iter_policy", "off"]
    argv, variables = build_launch(runtime, spec, program)
    with executor_for(env.launch_host, env, inv) as host:
        result = host.run(shell_command(argv), env=variables, timeout=timeout)
    try:
        return get_parser("imb").parse(result.stdout, f"{host.name}:PingPong").records
    except ParseError as exc:
        raise TestbedError(f"IMB PingPong across the testbed printed no result table: {exc}") from None


def peak_mb_s(records: list[dict]) -> float:
    """Highest PingPong throughput (10^6 bytes/s) of a set of IMB records."""
    values = [r["mbytes_per_sec"] for r in records if r.get("benchmark") == "PingPong" and r.get("mbytes_per_sec")]
    if not values:
        raise TestbedError("no PingPong throughput in the IMB output")
    return max(values)


def shaped_link_check(name: str = "vhpc", rate: str = "1gbit", *, msglog: tuple[int, int] = (22, 23),
                      iterations: int = 20, tolerance: float = 0.15, attempts: int = 2) -> dict:
    """Measure peak PingPong throughput with links shaped to ``rate`` and unshaped.

    Shaped, PingPong is repeated up to ``attempts`` times until its peak reaches
    ``rate * (1 - tolerance)``: on a loaded machine a descheduled rank can stall a
    transfer, which only ever lowers the number, never raises it above the rate.
    The testbed's own shaping is restored afterwards. The result holds every
    measured peak and whether each bound holds; it does not raise when a check
    fails, so the caller can show the numbers.
    """
    rate_mb_s = parse_rate(rate) / 8e6
    testbed = info(name)
    before = testbed.rate
    shaped: list[float] = []
    try:
        shape(name, rate)
        for _ in range(max(1, attempts)):
            shaped.append(peak_mb_s(run_pingpong(testbed.inventory, msglog=msglog, iterations=iterations)))
            if shaped[-1] >= rate_mb_s * (1 - tolerance):
                break
        shape(name, None)
        unshaped = peak_mb_s(run_pingpong(testbed.inventory, msglog=msglog, iterations=iterations))
    finally:
        shape(name, before)
    best = max(shaped)
    return {
        "rate": rate, "rate_mb_s": rate_mb_s,
        "shaped_peak_mb_s": best, "shaped_peaks_mb_s": shaped, "unshaped_peak_mb_s": unshaped,
        "shaped_fraction": best / rate_mb_s, "unshaped_fraction": unshaped / rate_mb_s,
        # the upper bound must hold for every attempt: shaping never lets more through
        "shaped_ok": rate_mb_s * (1 - tolerance) <= best and all(p <= rate_mb_s for p in shaped),
        "unshaped_ok": unshaped > 2 * rate_mb_s,
        "msglog": list(msglog), "iterations": iterations, "tolerance": tolerance,
    }
