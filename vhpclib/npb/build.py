"""Build NPB-MZ (or any tree laid out like it) once, on one host, into the raw store.

The source (a directory or a tarball on the build host) is copied into a fresh
build folder under the environment's workdir, so the source tree is never
modified and every build starts clean. ``config/make.def`` is written from
the inventory, each benchmark is made, and the binaries are brought back into
``data/raw/<campaign>/<environment>/build/<build_id>/bin/`` with their sha256,
so they can be distributed later without the build host.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from ..config import Environment, NpbSpec
from ..exceptions import BuildError, InputError
from ..fsutil import sha256_file
from ..mpi import runtime_for
from ..record import FAILED, RunRecord
from ..remote import Executor, utc_now
from ..store import RawStore, check_id, redact_env
from .builds import STAGE, NpbBuild, load_build
from .makedef import make_def, parse_make_def

__all__ = ["CLASSES", "DEMO_BENCHMARK", "NPB_BENCHMARKS", "STAGE", "BuildTarget", "build_env", "build_npb",
           "build_targets", "default_build_id", "sha256_file"]
CLASSES = ("S", "W", "A", "B", "C", "D", "E", "F")
#: The NPB-MZ benchmarks, and the project's own test program built the same way.
NPB_BENCHMARKS = ("sp-mz", "bt-mz", "lu-mz")
DEMO_BENCHMARK = "mz-demo"
_BENCHMARK = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_LOG_TAIL = 15


@dataclass(frozen=True)
class BuildTarget:
    """One ``make`` of one benchmark: NPB 3.3 bakes the process count into the binary, 3.4 does not."""

    benchmark: str
    klass: str
    nprocs: int | None = None

    @property
    def binary_name(self) -> str:
        return f"{self.benchmark}.{self.klass}.{self.nprocs if self.nprocs is not None else 'x'}"

    def make_args(self) -> list[str]:
        args = [self.benchmark, f"CLASS={self.klass}"]
        if self.nprocs is not None:
            args.append(f"NPROCS={self.nprocs}")
        return args


def build_targets(version: str, benchmarks: Iterable[str], klass: str,
                  nprocs: Iterable[int] | None = None) -> list[BuildTarget]:
    """The makes a build needs: per benchmark, one per process count (3.3) or one (3.4).

    For 3.4 ``nprocs`` is ignored: its binaries run with any process count.
    """
    if klass not in CLASSES:
        raise InputError(f"class must be one of {', '.join(CLASSES)}, got {klass!r}", key="class")
    names = list(dict.fromkeys(benchmarks))
    if not names:
        raise InputError("no benchmark to build", key="benchmarks")
    for name in names:
        if not _BENCHMARK.match(name):
            raise InputError(f"not a benchmark make target: {name!r} (e.g. {', '.join(NPB_BENCHMARKS)})",
                             key="benchmarks")
    if version == "3.4":
        return [BuildTarget(name, klass) for name in names]
    counts = sorted(set(nprocs or ()))
    if not counts:
        raise InputError("NPB 3.3 bakes the process count into each binary: give nprocs "
                         "(e.g. 4, 8, 16, 32, 64)", key="nprocs")
    if counts[0] < 1:
        raise InputError(f"process counts must be >= 1, got {counts[0]}", key="nprocs")
    return [BuildTarget(name, klass, n) for name in names for n in counts]


def build_env(environment: Environment) -> dict[str, str]:
    """Variables a build on this environment's hosts needs: its env, its MPI's PATH and libraries.

    For Intel MPI, ``I_MPI_ROOT`` points the compiler wrappers at the MPI prefix (the
    impi-devel wheel's ``mpif90`` has no install prefix of its own).
    """
    runtime = runtime_for(environment)
    return {**runtime.impl.build_env(runtime.prefix), **environment.env, **runtime.env}


def default_build_id(version: str, klass: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-npb{version}-{klass}"


class _Log:
    """The build's combined output, one section per command, as the store keeps it."""

    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def add(self, title: str, stdout: str, stderr: str) -> None:
        self.stdout.append(f"### {title}\n{stdout}")
        self.stderr.append(f"### {title}\n{stderr}")

    def tail(self) -> str:
        lines = ("".join(self.stdout) + "".join(self.stderr)).strip().splitlines()
        return "\n".join(lines[-_LOG_TAIL:])


def build_npb(executor: Executor, spec: NpbSpec, *, benchmarks: Sequence[str], klass: str,
              campaign: str, environment: str, nprocs: Iterable[int] | None = None,
              store: RawStore | None = None, build_id: str | None = None, workdir: str = "/tmp/vhpc",
              env: Mapping[str, str] | None = None, timeout: float | None = 3600.0) -> NpbBuild:
    """Build ``benchmarks`` of class ``klass`` from ``spec.source`` on ``executor``; store logs and binaries.

    Returns the stored build (see ``load_build``). Raises ``BuildError`` when the source is
    missing or a make fails; a failed build is kept for diagnosis under
    ``<build_id>.failed-<stamp>`` and never counts as a build.
    """
    if spec.source is None:
        raise InputError("benchmarks.npb.source is not set: nothing to build", key="benchmarks.npb.source")
    store = store or RawStore()
    targets = build_targets(spec.version, benchmarks, klass, nprocs)
    build_id = check_id("build_id", build_id or default_build_id(spec.version, klass))
    if store.run_path(campaign, environment, STAGE, build_id).exists():
        raise InputError(f"build {build_id!r} already exists in {campaign}/{environment}: raw data is write-once",
                         key="build_id")
    make_def_text = make_def(spec.version, spec.fc, spec.fflags)
    variables = dict(env or {})
    source = str(spec.source)
    build_dir = f"{workdir.rstrip('/')}/npb-build/{build_id}"
    src_dir = f"{build_dir}/src"
    q = shlex.quote
    log = _Log()
    started = utc_now()
    t0 = time.perf_counter()
    record: dict[str, Any] = {
        "build_id": build_id, "source": source, "version": spec.version,
        "class": klass, "benchmarks": list(dict.fromkeys(benchmarks)),
        "nprocs": sorted({t.nprocs for t in targets if t.nprocs is not None}) or None,
        "fc": spec.fc, "fflags": spec.fflags, "flinkflags": spec.fflags,
        "make_def": make_def_text, "make_def_variables": parse_make_def(make_def_text),
        "build_dir": build_dir, "env": redact_env(variables), "started_utc": started,
    }

    def run(title: str, command: str, *, warn: bool = False, limit: float | None = 600.0):
        result = executor.run(command, env=variables, timeout=limit, warn=warn)
        log.add(title, result.stdout, result.stderr)
        return result

    host = run("host", "hostname; uname -srm")
    host_lines = host.stdout.strip().splitlines() + ["", ""]
    record["build_host"] = {"name": executor.name, "hostname": host_lines[0], "uname": host_lines[1]}
    run("prepare", f"rm -rf {q(build_dir)} && mkdir -p {q(src_dir)}")
    got = run("source", f"if [ -d {q(source)} ]; then cp -a {q(source)}/. {q(src_dir)}/ && echo directory; "
                        f"elif [ -f {q(source)} ]; then tar -xf {q(source)} -C {q(src_dir)} && echo tarball; "
                        f"else echo missing; fi")
    kind = got.stdout.strip().splitlines()[-1] if got.stdout.strip() else "missing"
    if kind == "missing":
        raise BuildError(f"{executor.name}: NPB source not found: {source}", file=source,
                         key="benchmarks.npb.source")
    record["source_kind"] = kind
    if kind == "tarball":  # a release tarball is identified by its checksum
        record["source_sha256"] = run("source sha256", f"sha256sum < {q(source)}").stdout.split()[0]
    tree = _locate_tree(run, src_dir, source)
    record["tree"] = tree
    record["compiler"] = _compiler_info(run, spec.fc)
    executor.put_text(make_def_text, f"{tree}/config/make.def")

    record["targets"] = []
    failure: str | None = None
    for target in targets:
        command = f"cd {q(tree)} && make " + " ".join(q(a) for a in target.make_args())
        t1 = time.perf_counter()
        result = run("make " + " ".join(target.make_args()), command, warn=True, limit=timeout)
        record["targets"].append({"benchmark": target.benchmark, "class": target.klass, "nprocs": target.nprocs,
                                  "command": command, "exit_status": result.exit_code,
                                  "duration_s": round(time.perf_counter() - t1, 3)})
        if result.exit_code != 0:
            failure = (f"make {' '.join(target.make_args())} failed with exit {result.exit_code} on "
                       f"{executor.name}")
            break
    binaries: list[dict[str, Any]] = []
    if failure is None:
        binaries, failure = _checksums(run, tree, targets, spec.version)
    record.update({"ended_utc": utc_now(), "duration_s": round(time.perf_counter() - t0, 3)})

    def stored(status: str = "complete", reasons: list[str] | None = None) -> RunRecord:
        return RunRecord(run_id=build_id, campaign=campaign, environment=environment, stage=STAGE, kind="build",
                         status=status, reasons=reasons or [], workload="npb", extra=record)

    if failure is not None:
        with store.new_run(stored(FAILED, [failure])) as writer:
            _write_logs(writer, log, make_def_text)
        raise BuildError(f"{failure}; log kept in {writer.path}; last output:\n{log.tail()}", key=build_id)

    with store.new_run(stored()) as writer:
        _write_logs(writer, log, make_def_text)
        (writer.tmp / "bin").mkdir()
        for binary in binaries:
            local = writer.tmp / binary["file"]
            executor.get(binary["path_on_build_host"], local)
            local.chmod(0o755)  # the stored copy is the binary itself: runnable where the store is local
            found = sha256_file(local)
            if found != binary["sha256"]:
                raise BuildError(f"copy of {binary['name']} from {executor.name} has sha256 {found}, "
                                 f"the build host reported {binary['sha256']}", key=binary["name"])
        writer.record.extra["binaries"] = binaries
    return load_build(store, campaign, environment, build_id)


def _locate_tree(run, src_dir: str, source: str) -> str:
    """The NPB-MZ-MPI tree inside the copied source: the folder holding Makefile, config/ and sys/."""
    q = shlex.quote
    found = run("locate", f"find {q(src_dir)} -maxdepth 3 -type d -name config | while IFS= read -r d; do "
                          f'p=$(dirname "$d"); [ -d "$p/sys" ] && [ -f "$p/Makefile" ] && echo "$p"; done; true')
    candidates = [line for line in found.stdout.splitlines() if line.strip()]
    if not candidates:
        raise BuildError(f"no NPB-MZ tree (Makefile, config/, sys/) in {source}", file=source,
                         key="benchmarks.npb.source")
    # A release tarball holds MZ-MPI, MZ-OMP and MZ-SER trees: this harness builds the MPI one.
    candidates.sort(key=lambda p: ("MZ-MPI" not in PurePosixPath(p).name, p.count("/"), p))
    return candidates[0]


def _compiler_info(run, fc: str) -> dict[str, Any]:
    """What the compiler is: ``--version`` and, for MPI wrappers, the underlying command line."""
    q = shlex.quote
    version = run("compiler --version", f"{q(fc)} --version", warn=True)
    info: dict[str, Any] = {"command": fc, "version": (version.stdout.strip().splitlines() or [""])[0],
                            "version_output": version.stdout.strip(), "version_exit_status": version.exit_code}
    for flag in ("-show", "--showme"):  # MPICH/Intel MPI wrappers, Open MPI wrappers
        shown = run(f"compiler {flag}", f"{q(fc)} {flag}", warn=True)
        if shown.exit_code == 0 and shown.stdout.strip():
            info["wrapper_command"] = shown.stdout.strip()
            break
    if version.exit_code != 0:
        raise BuildError(f"Fortran compiler {fc!r} does not run (exit {version.exit_code}): "
                         f"{(version.stderr or version.stdout).strip()[-300:]}", key="benchmarks.npb.fc")
    return info


def _checksums(run, tree: str, targets: list[BuildTarget], version: str) -> tuple[list[dict[str, Any]], str | None]:
    """sha256 and size of each built binary, computed on the build host."""
    q = shlex.quote
    names = [t.binary_name for t in targets]
    paths = [f"{tree}/bin/{n}" for n in names]
    listing = run("binaries", "for f in " + " ".join(q(p) for p in paths)
                  + '; do if [ -f "$f" ]; then printf "%s\\t%s\\t%s\\n" "$f" "$(stat -c %s "$f")" '
                    '"$(sha256sum < "$f" | cut -d " " -f 1)"; else printf "missing\\t%s\\n" "$f"; fi; done')
    rows = [line.split("\t") for line in listing.stdout.splitlines() if "\t" in line]
    missing = [row[1] for row in rows if row[0] == "missing"]
    if missing:
        hint = (" (NPB 3.4 names its binaries <bench>.<class>.x, 3.3 <bench>.<class>.<nprocs>: "
                f"is this tree really NPB {version}?)")
        return [], f"make succeeded but did not produce {', '.join(missing)}{hint}"
    info = {row[0]: (int(row[1]), row[2]) for row in rows if len(row) == 3}
    binaries = []
    for target, name, path in zip(targets, names, paths):
        size, digest = info[path]
        binaries.append({"name": name, "benchmark": target.benchmark, "class": target.klass,
                         "nprocs": target.nprocs, "path_on_build_host": path, "file": f"bin/{name}",
                         "sha256": digest, "size": size})
    return binaries, None


def _write_logs(writer, log: _Log, make_def_text: str) -> None:
    writer.stdout_path.write_text("".join(log.stdout))
    writer.stderr_path.write_text("".join(log.stderr))
    writer.add_file("make.def", make_def_text)
