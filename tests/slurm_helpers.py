"""What the Slurm tests share: a real private cluster, or a clear reason why there is none."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from vhpclib.exceptions import VhpcError
from vhpclib.slurm import cluster as cl


def need_slurm() -> None:
    """Skip (fail in CI) when slurmctld, slurmd, munged or root are missing."""
    try:
        cl.require_tools()
    except VhpcError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"real Slurm needed in CI: {exc}")
        pytest.skip(str(exc))


@contextmanager
def private_cluster(factory: pytest.TempPathFactory, name: str, *,
                    message_timeout_s: int | None = None) -> Iterator[cl.PrivateCluster]:
    """A one-node private cluster (this machine) in a fresh tmp folder, stopped by PID afterwards."""
    need_slurm()
    cluster = cl.start_cluster(factory.mktemp(name), message_timeout_s=message_timeout_s)
    try:
        yield cluster
    finally:
        cl.stop_cluster(cluster.folder)
