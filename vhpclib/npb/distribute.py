"""Build once, run everywhere: copy stored NPB-MZ binaries to hosts and verify them before each run.

No shared filesystem is assumed: binaries go from the raw store to every
host with ``Executor.put``. Before every run the caller checks the binary on
the host with ``verify_deployment``; a binary whose sha256 differs from the
build's (rebuilt, truncated, replaced) raises ``ChecksumMismatch``.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import ChecksumMismatch, InputError, StoreError
from ..fsutil import sha256_file
from ..remote import Executor
from .builds import BuiltBinary, NpbBuild


@dataclass(frozen=True)
class Deployment:
    """A verified copy of a built binary on one host: what a run record needs to name it."""

    host: str
    path: str
    binary: BuiltBinary
    build_campaign: str
    build_environment: str
    build_id: str
    build_host: str

    def record(self) -> dict[str, Any]:
        """Fields for a run record: which binary ran, its checksum, and where it was built."""
        return {"binary": self.path, "binary_host": self.host, "binary_name": self.binary.name,
                "sha256": self.binary.sha256, "size": self.binary.size,
                "built_in": {"environment": self.build_environment, "campaign": self.build_campaign,
                             "build_id": self.build_id, "build_host": self.build_host}}


def install_dir(workdir: str, build: NpbBuild) -> str:
    """Where a build's binaries live on a host: one folder per build, so builds never overwrite each other."""
    return f"{workdir.rstrip('/')}/npb/{build.environment}/{build.build_id}"


def sha256_on_host(executor: Executor, path: str) -> str | None:
    """sha256 of a file on a host, or None when there is no such file."""
    q = shlex.quote(path)
    result = executor.run(f"if [ -f {q} ]; then sha256sum < {q}; else echo missing; fi", timeout=300)
    word = (result.stdout.split() or ["missing"])[0]
    return None if word == "missing" else word


def verify_binary(executor: Executor, path: str, expected: str) -> None:
    """Raise ``ChecksumMismatch`` unless ``path`` on the host has sha256 ``expected``."""
    found = sha256_on_host(executor, path)
    if found != expected:
        what = "is missing" if found is None else f"has sha256 {found}"
        err = ChecksumMismatch(f"binary on host {executor.name} {what}, expected sha256 {expected} (the build's); "
                               f"refusing to run it: distribute the build again", file=path)
        err.host, err.path, err.expected, err.found = executor.name, path, expected, found  # type: ignore[attr-defined]
        raise err


def verify_deployment(executor: Executor, deployment: Deployment) -> Deployment:
    """Check a deployed binary right before a run; returns it for chaining."""
    if executor.name != deployment.host:
        raise InputError(f"deployment is on {deployment.host}, not on {executor.name}", key="host")
    verify_binary(executor, deployment.path, deployment.binary.sha256)
    return deployment


def distribute(build: NpbBuild, executors: Iterable[Executor], *, workdir: str = "/tmp/vhpc",
               names: Sequence[str] | None = None) -> list[Deployment]:
    """Copy the build's binaries (or only ``names``) to every host and verify each copy.

    A host that already holds the right binary is not copied to again. The copy is
    written under a temporary name and renamed, so a run never sees half a binary.
    Hosts are served one after another; the first failure raises, naming its host.
    """
    chosen = [b for b in build.binaries if names is None or b.name in names]
    unknown = set(names or ()) - {b.name for b in build.binaries}
    if unknown:
        raise InputError(f"build {build.build_id} has no binaries {sorted(unknown)}", key="names")
    for binary in chosen:
        if not binary.file.is_file():
            raise StoreError(f"stored binary is missing: {binary.file}", file=str(binary.file))
        found = sha256_file(binary.file)
        if found != binary.sha256:  # never ship a store copy that is not what was built
            err = ChecksumMismatch(f"stored copy has sha256 {found}, the build recorded {binary.sha256}; "
                                   f"refusing to distribute it", file=str(binary.file))
            err.host, err.path, err.expected, err.found = "store", str(binary.file), binary.sha256, found  # type: ignore[attr-defined]
            raise err
    target_dir = install_dir(workdir, build)
    out: list[Deployment] = []
    for executor in executors:
        for binary in chosen:
            path = f"{target_dir}/{binary.name}"
            if sha256_on_host(executor, path) != binary.sha256:
                partial = f"{path}.partial-{uuid.uuid4().hex[:8]}"
                executor.put(binary.file, partial)
                try:
                    verify_binary(executor, partial, binary.sha256)  # a broken transfer never takes the name
                except ChecksumMismatch:
                    executor.run(f"rm -f {shlex.quote(partial)}", warn=True, timeout=60)
                    raise
                executor.run(f"chmod 755 {shlex.quote(partial)} && mv -f {shlex.quote(partial)} {shlex.quote(path)}",
                             timeout=60)
            verify_binary(executor, path, binary.sha256)
            out.append(Deployment(executor.name, path, binary, build.campaign, build.environment, build.build_id,
                                  build.build_host))
    return out
