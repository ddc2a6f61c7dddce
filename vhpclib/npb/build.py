"""Build NPB-MZ (or any tree laid out like it) once, on one host, into the raw store.

The source (a directory or a tarball on the build host) is copied into a fresh
build folder under the environment's workdir, so the source tree is never
modified and every build starts clean. ``config/make.def`` is written from
the inventory with the variables of the tree's NPB version, ``BINDIR`` is
created (no NPB makefile creates it, and git copies of NPB have no empty
``bin/``), each benchmark is made, and the binaries are brought back into
``data/raw/<campaign>/<environment>/build/<build_id>/bin/`` with their sha256,
so they can be distributed later without the build host.

The record says which compiler really ran: the Fortran compile and link lines
make printed must start with the chosen compiler, and the "Compile options"
each benchmark's ``npbparams.h`` bakes in (what every run prints) must be the
ones ``make.def`` sets; ``compile_options`` in the record is what runs must print.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..config import Environment
from ..exceptions import BuildError, InputError
from ..fsutil import sha256_file
from ..mpi import runtime_for
from ..record import FAILED, RunRecord
from ..remote import Executor, utc_now
from ..store import RawStore, check_id, redact_env
from .builds import STAGE, NpbBuild, load_build
from .compile_options import (compile_option_mismatches, expected_compile_options, npbparams_compile_options,
                              printed_compile_options)
from .makedef import make_def, parse_make_def

if TYPE_CHECKING:
    from .spec import NpbSpec

__all__ = ["CLASSES", "DEMO_BENCHMARK", "NPB_BENCHMARKS", "STAGE", "BuildTarget", "build_env", "build_npb",
           "build_targets", "default_build_id", "sha256_file"]
CLASSES = ("S", "W", "A", "B", "C", "D", "E", "F")
#: The NPB-MZ benchmarks, and the project's own test program built the same way.
NPB_BENCHMARKS = ("sp-mz", "bt-mz", "lu-mz")
DEMO_BENCHMARK = "mz-demo"
_BENCHMARK = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_FORTRAN_SOURCE = re.compile(r"\.(f|for|f90|f95|f03|F|F90)$")
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
    make_def_variables = parse_make_def(make_def_text)
    expected_options = expected_compile_options(spec.version, make_def_text)
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
        "make_def": make_def_text, "make_def_variables": make_def_variables,
        "compile_options": printed_compile_options(spec.version, make_def_text),  # what every run must print
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
    record.update(_copy_source(run, executor.name, source, src_dir))
    tree = _locate_tree(run, src_dir, source)
    record["tree"] = tree
    record["compiler"] = _compiler_info(run, spec.fc)
    executor.put_text(make_def_text, f"{tree}/config/make.def")
    bin_dir = _bin_dir(tree, make_def_variables["BINDIR"])
    record["bin_dir"] = bin_dir
    run("bindir", f"mkdir -p {q(bin_dir)}")

    record["targets"] = []
    failure = _make_all(run, executor.name, targets, tree, spec, make_def_variables["BINDIR"], expected_options,
                        record["targets"], timeout)
    binaries: list[dict[str, Any]] = []
    if failure is None:
        binaries, failure = _checksums(run, bin_dir, targets, spec.version)
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


def _copy_source(run, host: str, source: str, src_dir: str) -> dict[str, Any]:
    """Copy a source folder or unpack a tarball into ``src_dir``; what the record keeps of the source."""
    q = shlex.quote
    got = run("source", f"if [ -d {q(source)} ]; then cp -a {q(source)}/. {q(src_dir)}/ && echo directory; "
                        f"elif [ -f {q(source)} ]; then tar -xf {q(source)} -C {q(src_dir)} && echo tarball; "
                        f"else echo missing; fi")
    kind = got.stdout.strip().splitlines()[-1] if got.stdout.strip() else "missing"
    if kind == "missing":
        raise BuildError(f"{host}: NPB source not found: {source}", file=source, key="benchmarks.npb.source")
    out: dict[str, Any] = {"source_kind": kind}
    if kind == "tarball":  # a release tarball is identified by its checksum
        out["source_sha256"] = run("source sha256", f"sha256sum < {q(source)}").stdout.split()[0]
    return out


def _make_all(run, host: str, targets: list[BuildTarget], tree: str, spec: NpbSpec, bindir: str,
              expected_options: Any, entries: list[dict[str, Any]], timeout: float | None) -> str | None:
    """``make`` every target, checking what each one ran; the first failure, in words, or None."""
    q = shlex.quote
    for target in targets:
        command = f"cd {q(tree)} && make " + " ".join(q(a) for a in target.make_args())
        t1 = time.perf_counter()
        result = run("make " + " ".join(target.make_args()), command, warn=True, limit=timeout)
        entry: dict[str, Any] = {"benchmark": target.benchmark, "class": target.klass, "nprocs": target.nprocs,
                                 "command": command, "exit_status": result.exit_code,
                                 "duration_s": round(time.perf_counter() - t1, 3)}
        entries.append(entry)
        if result.exit_code != 0:
            return (f"make {' '.join(target.make_args())} failed with exit {result.exit_code} on {host}"
                    + _other_compiler_hint(result.stdout, spec, bindir, target))
        failure = _check_what_ran(run, entry, result.stdout, tree, target, spec, bindir, expected_options)
        if failure is not None:
            return failure
    return None


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


def _bin_dir(tree: str, bindir: str) -> str:
    """Where ``BINDIR`` points: it is relative to a benchmark folder (``../bin`` is ``<tree>/bin``)."""
    return posixpath.normpath(bindir if bindir.startswith("/") else f"{tree}/BENCHMARK/{bindir}")


def _fortran_commands(make_output: str, bindir: str, binary: str) -> tuple[list[str], list[str]]:
    """The Fortran compile commands and the link command of ``binary`` that make printed."""
    compiles, links = [], []
    for line in make_output.splitlines():
        for segment in re.split(r";|&&", line):
            words = segment.split()
            if "-c" in words and words and _FORTRAN_SOURCE.search(words[-1]):
                compiles.append(segment.strip())
            elif any(a == "-o" and b == f"{bindir}/{binary}" for a, b in zip(words, words[1:])):
                links.append(segment.strip())
    return compiles, links


def _other_compiler_hint(make_output: str, spec: NpbSpec, bindir: str, target: BuildTarget) -> str:
    """Why a make may have failed: it compiled with another compiler than make.def's (another NPB version)."""
    compiles, links = _fortran_commands(make_output, bindir, target.binary_name)
    other = [c for c in compiles + links if not c.startswith(spec.fc + " ")]
    if not other:
        return ""
    return (f" (it ran {other[0]!r}, not the compiler make.def names ({spec.fc}): the tree does not read the "
            f"variables of an NPB {spec.version}-MZ make.def; is it another NPB version?)")


def _check_what_ran(run, entry: dict[str, Any], make_output: str, tree: str, target: BuildTarget, spec: NpbSpec,
                    bindir: str, expected: dict[str, str | None]) -> str | None:
    """Record the compile/link lines and the compiled-in options of one make; a failure message if
    make ran another compiler than the chosen one or baked in other options than make.def's."""
    q = shlex.quote
    compiles, links = _fortran_commands(make_output, bindir, target.binary_name)
    entry["compile_command"] = compiles[0] if compiles else None
    entry["link_command"] = links[-1] if links else None
    other = [c for c in compiles + links if not c.startswith(spec.fc + " ")]
    if other:
        return (f"make {' '.join(target.make_args())} ran {other[0]!r}, not the compiler make.def names "
                f"({spec.fc}): the tree does not read this NPB {spec.version} make.def's variables")
    header = f"{tree}/{target.benchmark.upper()}/npbparams.h"
    got = run(f"npbparams.h of {target.benchmark}", f"cat {q(header)}", warn=True)
    if got.exit_code != 0:
        return f"make {' '.join(target.make_args())} left no {header}: cannot tell what the binary will print"
    compiled_in = npbparams_compile_options(spec.version, got.stdout)
    entry["compile_options"] = compiled_in
    differ = compile_option_mismatches(expected, compiled_in)
    if differ:
        return (f"{header} bakes in compile options other than make.def's ({'; '.join(differ)}): "
                f"is this tree really NPB {spec.version}-MZ?")
    return None


def _checksums(run, bin_dir: str, targets: list[BuildTarget],
               version: str) -> tuple[list[dict[str, Any]], str | None]:
    """sha256 and size of each built binary, computed on the build host."""
    q = shlex.quote
    names = [t.binary_name for t in targets]
    paths = [f"{bin_dir}/{n}" for n in names]
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
