"""Getting the workloads into a guest: Intel MPI + IMB from this venv, blockss from a wheelhouse.

The guest gets one prefix, ``/opt/vhpc``, laid out like this project's venv:
a Python venv (the guest's own python3) holding blockss with numpy, scipy and
mpi4py, and the impi-rt files (``bin/mpirun``, ``bin/IMB-MPI1``, ``lib/libmpi*``)
copied beside them, so ``mpi.prefix: /opt/vhpc`` finds mpirun, IMB-MPI1,
libmpi and ``vhpc-blockss`` exactly where the host's venv has them.

Host side, cached in ``~/.cache/vhpc/vm/``: the impi-rt files as a tarball
(exactly the files impi-rt's RECORD lists), third-party wheels made with ``pip
download`` at the host's own versions (so guest and host compute with the same
numpy/scipy), and a small ``vhpc-blockss`` wheel built from ``apps/blockss``.
Guest side: ``pip install --no-index --find-links``, nothing downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..exceptions import RemoteError, VmError
from .guest_ssh import GuestSsh, quote
from .cache import cache_root

GUEST_PREFIX = "/opt/vhpc"
GUEST_WHEELHOUSE = "/tmp/vhpc-wheelhouse"
MPI_DIST = "impi-rt"
WHEEL_DEPS = ("numpy", "scipy", "mpi4py")
BLOCKSS_DIST = "vhpc-blockss"


@dataclass(frozen=True)
class Payload:
    """What a guest receives, made once per version on the host and cached."""

    mpi_tarball: Path
    mpi_version: str
    wheel_dirs: tuple[Path, ...]
    wheels: tuple[str, ...]

    def digest(self) -> str:
        """Names every cached part by its own content key: a new blockss or numpy gives a new digest."""
        parts = [self.mpi_tarball.parent.name, *(d.parent.name if d.name == "dist" else d.name
                                                  for d in self.wheel_dirs), *self.wheels]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def wheel_paths(self) -> list[Path]:
        return [d / w for d in self.wheel_dirs for w in self.wheels if (d / w).is_file()]

    @property
    def pip_wheel(self) -> str:
        name = next((w for w in self.wheels if w.startswith("pip-")), None)
        if name is None:
            raise VmError("the wheelhouse holds no pip wheel")
        return name

    def to_dict(self) -> dict:
        return {"mpi": f"{MPI_DIST} {self.mpi_version}", "wheels": list(self.wheels), "guest_prefix": GUEST_PREFIX,
                "digest": self.digest()}


def _atomic_dir(final: Path, make) -> Path:  # noqa: ANN001
    """Build a cache folder in a temporary sibling and rename it into place (an interrupted build never counts)."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        make(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)  # built by someone else meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ------------------------------------------------------------------ Intel MPI runtime

def mpi_files(prefix: Path | None = None) -> tuple[str, list[str]]:
    """impi-rt's version and its files relative to the venv prefix (from its RECORD, no Python package)."""
    prefix = Path(prefix or sys.prefix).resolve()
    try:
        dist = metadata.distribution(MPI_DIST)
    except metadata.PackageNotFoundError:
        raise VmError(f"{MPI_DIST} is not installed in this venv; run `make venv`") from None
    files = []
    for entry in dist.files or []:
        path = Path(entry.locate()).resolve()
        try:
            rel = path.relative_to(prefix)
        except ValueError:
            continue
        if rel.parts[:2] == ("lib", f"python{sys.version_info.major}.{sys.version_info.minor}"):
            continue  # the impi_rt Python package and dist-info: the guest venv has its own site-packages
        if path.is_file():
            files.append(str(rel))
    if "bin/mpirun" not in files or "bin/IMB-MPI1" not in files:
        raise VmError(f"{MPI_DIST} in {prefix} lacks bin/mpirun or bin/IMB-MPI1")
    return dist.version, sorted(files)


def mpi_tarball(prefix: Path | None = None) -> tuple[Path, str]:
    """Cached ``impi-rt-<version>.tar.gz`` of the MPI runtime files; returns (path, version)."""
    prefix = Path(prefix or sys.prefix).resolve()
    version, files = mpi_files(prefix)
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:12]
    final = cache_root() / f"impi-rt-{version}-{digest}"

    def make(tmp: Path) -> None:
        # pip installs libmpi.so, .so.12, .so.12.0 ... as separate identical files: store each content once
        # and the copies as hard links (a third of the size to carry into the guest).
        first: dict[str, str] = {}
        with tarfile.open(tmp / "impi-rt.tar.gz", "w:gz", compresslevel=1) as tar:
            for rel in files:
                data = (prefix / rel).read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                info = tar.gettarinfo(str(prefix / rel), arcname=rel)
                if digest in first:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, first[digest], 0
                    tar.addfile(info)
                else:
                    first[digest] = rel
                    with open(prefix / rel, "rb") as fh:
                        tar.addfile(info, fh)

    return _atomic_dir(final, make) / "impi-rt.tar.gz", version


# ------------------------------------------------------------------ wheelhouse

def _pins() -> list[str]:
    pins = []
    for name in WHEEL_DEPS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise VmError(f"{name} is not installed in this venv; run `make venv`") from None
    return pins


def _pip(args: list[str], what: str, timeout: float = 600.0) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise VmError(f"{what} failed (exit {done.returncode}): {tail}")


def third_party_wheels() -> Path:
    """Cached wheels of numpy, scipy and mpi4py at this venv's versions, plus pip to install them with."""
    pins = _pins()
    try:
        pins.append(f"pip=={metadata.version('pip')}")
    except metadata.PackageNotFoundError:
        pins.append("pip")
    digest = hashlib.sha256(f"{sys.version_info[:2]}\n{' '.join(pins)}".encode()).hexdigest()[:12]

    def make(tmp: Path) -> None:
        _pip(["download", "--quiet", "--only-binary=:all:", "--dest", str(tmp), *pins],
             f"pip download {' '.join(pins)}")

    return _atomic_dir(cache_root() / f"wheels-{digest}", make)


def _blockss_source() -> Path:
    return paths.APPS / "blockss"


def _blockss_version() -> str:
    for line in (_blockss_source() / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "0"


def blockss_wheel() -> Path:
    """A cached ``vhpc-blockss`` wheel of ``apps/blockss`` (console script ``vhpc-blockss``), keyed by its source."""
    source = _blockss_source()
    files = sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(source)).encode() + b"\0" + p.read_bytes())
    pins = _pins()
    h.update(" ".join(pins).encode())
    version = _blockss_version()

    def make(tmp: Path) -> None:
        project = tmp / "project"
        shutil.copytree(source, project / "blockss", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        deps = ", ".join(f'"{p}"' for p in pins)
        (project / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{BLOCKSS_DIST}"\nversion = "{version}"\nrequires-python = ">=3.11"\n'
            f"dependencies = [{deps}]\n\n[project.scripts]\nvhpc-blockss = \"blockss.cli:main\"\n\n"
            '[tool.setuptools]\npackages = ["blockss"]\n')
        _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp / "dist"),
              str(project)], "building the vhpc-blockss wheel")
        shutil.rmtree(project)

    return _atomic_dir(cache_root() / f"blockss-{h.hexdigest()[:12]}", make) / "dist"


def prepare_payload() -> Payload:
    """Everything a guest receives, made (or found cached) on the host."""
    tarball, version = mpi_tarball()
    folders = (third_party_wheels(), blockss_wheel())
    wheels = tuple(sorted(p.name for folder in folders for p in folder.glob("*.whl")))
    return Payload(tarball, version, folders, wheels)


# ------------------------------------------------------------------ into the guest

def _pip_install_argv(payload: Payload, wheelhouse: str, *, compile_bytecode: bool,
                      prefix: str = GUEST_PREFIX, requirement: str = BLOCKSS_DIST) -> list[str]:
    argv = [f"{prefix}/bin/python", f"{wheelhouse}/{payload.pip_wheel}/pip", "install", "--quiet",
            "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--find-links", wheelhouse]
    if not compile_bytecode:
        argv.append("--no-compile")
    return [*argv, requirement]


def _check(prefix: str = GUEST_PREFIX, requirement: str = BLOCKSS_DIST) -> str:
    """Shell test that every workload is in place under ``prefix`` (fails with the first missing piece)."""
    modules = "blockss, numpy, scipy, mpi4py" if requirement == BLOCKSS_DIST else requirement.replace("-", "_")
    blockss = f"test -x {prefix}/bin/vhpc-blockss; " if requirement == BLOCKSS_DIST else ""
    return (f"set -e; test -x {prefix}/bin/IMB-MPI1; test -x {prefix}/bin/mpirun; {blockss}"
            f"test -e {prefix}/lib/libmpi.so.12; {prefix}/bin/python -c 'import {modules}'")


def install_into_rootfs(rootfs: Path, payload: Payload, log: Path) -> dict:
    """Install the payload into a guest root filesystem with the guest's own python3, through chroot.

    Same steps as over SSH, at the host's speed: a venv at /opt/vhpc (pip run
    from its wheel, no ensurepip), impi-rt unpacked into it, then ``pip install
    --no-index --find-links`` of blockss and its wheels.
    """
    def chroot(command: str, what: str) -> None:
        with open(log, "a") as fh:
            fh.write(f"$ chroot {rootfs} {command}\n")
            fh.flush()
            done = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                                  stdout=fh, stderr=subprocess.STDOUT, timeout=900)
        if done.returncode != 0:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise VmError(f"{what} in the guest root filesystem failed (exit {done.returncode}): {tail}",
                          file=str(log))

    t0 = time.perf_counter()
    chroot(f"python3 -m venv --without-pip {GUEST_PREFIX}", "creating the venv")
    with tarfile.open(payload.mpi_tarball) as tar:
        tar.extractall(rootfs / GUEST_PREFIX.lstrip("/"), filter="tar")
    house = rootfs / GUEST_WHEELHOUSE.lstrip("/")
    house.mkdir(parents=True, exist_ok=True)
    for wheel in payload.wheel_paths():
        shutil.copy2(wheel, house / wheel.name)
    try:
        chroot(quote(_pip_install_argv(payload, GUEST_WHEELHOUSE, compile_bytecode=True)), "pip install")
    finally:
        shutil.rmtree(house, ignore_errors=True)
    chroot(_check(), "checking the workloads")
    return {**payload.to_dict(), "installed_s": round(time.perf_counter() - t0, 1), "how": "chroot at build"}


def install(ssh: GuestSsh, payload: Payload, *, prefix: str = GUEST_PREFIX, requirement: str = BLOCKSS_DIST,
            timeout: float = 1800.0) -> dict:
    """Copy the payload into a running guest over SSH and install it (user images, which we cannot chroot into).

    Bytecode is not compiled at install (under TCG that alone takes minutes);
    Python compiles what it imports on first use. ``requirement`` is what pip
    installs from the wheelhouse (blockss and, through it, numpy/scipy/mpi4py).
    """
    steps: dict[str, float] = {}
    house = f"{GUEST_WHEELHOUSE}-{os.getpid()}"
    t0 = time.perf_counter()
    ssh.run(f"set -e; python3 -m venv --without-pip {shlex.quote(prefix)}; mkdir -p {house}", timeout=timeout)
    ssh.run(f"tar xzf - -C {shlex.quote(prefix)}", stdin_path=payload.mpi_tarball, timeout=timeout)
    steps["mpi_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        with tarfile.open(tmp.name, "w") as tar:  # wheels are zip files already: no compression
            for wheel in payload.wheel_paths():
                tar.add(wheel, arcname=wheel.name)
        ssh.run(f"tar xf - -C {house}", stdin_path=Path(tmp.name), timeout=timeout)
    pip = _pip_install_argv(payload, house, compile_bytecode=False, prefix=prefix, requirement=requirement)
    ssh.run(f"set -e; {quote(pip)}; rm -rf {house}", timeout=timeout)
    steps["wheels_s"] = round(time.perf_counter() - t0, 1)
    try:
        ssh.run(_check(shlex.quote(prefix), requirement), timeout=600)
    except RemoteError as exc:
        raise VmError(f"the guest lacks a workload after provisioning: {exc}") from None
    return {**payload.to_dict(), **steps, "how": "ssh at up"}
