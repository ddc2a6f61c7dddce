"""How close does `inventory check` on 8 hosts come to its floor? (target: t8/floor <= 1.2)

Starts its own sshd on 127.0.0.1-8 (vhpclib.sshd), writes an inventory with
strict host keys, and times ``check_inventory`` with fresh connections every
time (no pool reuse): median of 5 runs over 1 host and over 8 hosts, after one
warm-up each. The 8 simulated hosts share this machine's cores with the client,
so 8 checks cannot take less than the CPU they need spread over the cores: the
floor is max(t1, 8 x CPU per host check / cores), with the CPU per host check
(client and sshd side) measured in the 8-host runs. Needs root and
/usr/sbin/sshd. The last line is ``t8_over_floor=X fanout_ratio=Y``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vhpclib.config import default_mpi_prefix, load_inventory
from vhpclib.inventory_check import check_inventory
from vhpclib.sshd import SshServer, free_port, generate_keys, sshd_available, write_known_hosts

ADDRESSES = [f"127.0.0.{i}" for i in range(1, 9)]


def inventory(folder: Path, keys, port: int, known_hosts: Path, addresses: list[str]) -> Path:
    host = lambda a: {"address": a, "port": port, "user": "root", "key_file": str(keys.client_key)}  # noqa: E731
    data = {"name": "fanout-bench", "environments": {"ssh": {
        "label": "ssh", "baseline": True, "host_key_policy": "strict", "known_hosts": str(known_hosts),
        "hosts": [host(a) for a in addresses], "mpi": {"flavour": "intel", "prefix": str(default_mpi_prefix())}}}}
    path = folder / f"inventory-{len(addresses)}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cpu_seconds(sshd_pid: int) -> float:
    """CPU used so far by this process and by the sshd's finished sessions (the simulated hosts' side)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    fields = Path(f"/proc/{sshd_pid}/stat").read_text().rsplit(")", 1)[1].split()
    sshd = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return me.ru_utime + me.ru_stime + sshd


def time_check(path: Path, store: Path, repeats: int) -> list[float]:
    inv = load_inventory(path)
    times = []
    for i in range(repeats + 1):  # first run warms caches (imports, page cache) and is dropped
        t0 = time.perf_counter()
        report = check_inventory(inv, ["ssh"], "fanout", store_root=store)
        elapsed = time.perf_counter() - t0
        if report.exit_code != 0:
            raise SystemExit(f"check failed: {report.summary()}")
        if i:
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shell-rc", action="store_true",
                        help="let remote bash source root's ~/.bashrc (this machine's, ~0.1 s CPU per command)")
    args = parser.parse_args()
    reason = sshd_available()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    with tempfile.TemporaryDirectory(prefix="vhpc-fanout-") as tmp:
        folder = Path(tmp)
        keys = generate_keys(folder / "keys")
        port = free_port(ADDRESSES[0], addresses=ADDRESSES[1:])
        server = SshServer(folder, keys, ADDRESSES, port, name="sshd-fanout", shell_rc=args.shell_rc)
        server.start()
        try:
            known_hosts = folder / "known_hosts"
            write_known_hosts(known_hosts, server.known_hosts_entries())
            c0 = cpu_seconds(server.pid)
            one = time_check(inventory(folder, keys, port, known_hosts, ADDRESSES[:1]), folder / "raw", args.repeats)
            c1 = cpu_seconds(server.pid)
            eight = time_check(inventory(folder, keys, port, known_hosts, ADDRESSES), folder / "raw", args.repeats)
            time.sleep(0.2)  # let sshd reap the last sessions so their CPU is counted
            c8 = cpu_seconds(server.pid)
        finally:
            server.stop()
    m1, m8 = statistics.median(one), statistics.median(eight)
    print(f"1 host : median {m1:.3f} s  runs {' '.join(f'{t:.3f}' for t in one)}")
    print(f"8 hosts: median {m8:.3f} s  runs {' '.join(f'{t:.3f}' for t in eight)}")
    runs = args.repeats + 1
    print(f"cpu per host check (client + sshd side, all on this machine): 1-host runs "
          f"{(c1 - c0) / runs * 1000:.0f} ms, 8-host runs {(c8 - c1) / runs / 8 * 1000:.0f} ms; "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    print(f"parallel speedup over serial (8 x t1 / t8): {8 * m1 / m8:.1f}")
    cpu_per_host = (c8 - c1) / runs / 8
    cores = len(os.sched_getaffinity(0))
    floor = max(m1, 8 * cpu_per_host / cores)
    print(f"floor = max(t1 {m1:.3f} s, 8 x {cpu_per_host * 1000:.0f} ms / {cores} cores = "
          f"{8 * cpu_per_host / cores:.3f} s) = {floor:.3f} s; t8 = {m8:.3f} s")
    sys.stdout.flush()
    print(f"t8_over_floor={m8 / floor:.2f} fanout_ratio={m8 / m1:.2f}")


if __name__ == "__main__":
    main()
