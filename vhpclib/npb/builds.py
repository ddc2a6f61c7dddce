"""Builds read back from the raw store: which binaries a build made, with the checksum every copy must have.

A build lives in ``data/raw/<campaign>/<environment>/build/<build_id>/`` (its
record, logs, ``make.def`` and ``bin/``), written by ``vhpclib.npb.build``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import InputError, StoreError
from ..store import COMPLETE, RawStore

STAGE = "build"


@dataclass(frozen=True)
class BuiltBinary:
    """One binary of a stored build, with the checksum every copy must have."""

    name: str
    benchmark: str
    klass: str
    nprocs: int | None
    sha256: str
    size: int
    file: Path  # the copy in the raw store


@dataclass(frozen=True)
class NpbBuild:
    """A complete build read back from ``data/raw/<campaign>/<environment>/build/<build_id>/``."""

    campaign: str
    environment: str
    build_id: str
    path: Path
    version: str
    build_host: str
    binaries: tuple[BuiltBinary, ...]
    record: dict[str, Any]

    def binary(self, benchmark: str, klass: str, nprocs: int) -> BuiltBinary:
        """The binary a run of ``nprocs`` processes needs: its own (3.3) or the any-count one (3.4)."""
        for b in self.binaries:
            if b.benchmark == benchmark and b.klass == klass and b.nprocs in (nprocs, None):
                return b
        have = ", ".join(b.name for b in self.binaries)
        raise InputError(f"build {self.build_id} has no {benchmark} class {klass} binary for {nprocs} processes "
                         f"(has: {have})", key="nprocs")


def load_build(store: RawStore, campaign: str, environment: str, build_id: str) -> NpbBuild:
    """Read a complete build; raises ``StoreError`` if it is missing or was not a successful build."""
    path = store.run_path(campaign, environment, STAGE, build_id)
    if not store.is_complete(campaign, environment, STAGE, build_id):
        raise StoreError(f"no complete build {build_id!r} in {campaign}/{environment}", file=str(path))
    stored = store.load(campaign, environment, STAGE, build_id).record
    record = stored.extra
    if stored.kind != "build" or stored.status != COMPLETE or "binaries" not in record:
        raise StoreError(f"{build_id!r} is not a successful NPB build (status {stored.status!r})",
                         file=str(path))
    binaries = tuple(BuiltBinary(b["name"], b["benchmark"], b["class"], b["nprocs"], b["sha256"], b["size"],
                                 path / b["file"]) for b in record["binaries"])
    return NpbBuild(campaign, environment, build_id, path, record["version"], record["build_host"]["name"],
                    binaries, record)


def successful_builds(store: RawStore, campaign: str, environment: str) -> list[NpbBuild]:
    """Every successful build of an environment in a campaign, newest first (failed builds are skipped)."""
    done = [r for r in store.runs(campaign, environment, STAGE)
            if r.record.kind == "build" and r.status == COMPLETE and "binaries" in r.record.extra]
    done.sort(key=lambda r: r.record.extra.get("ended_utc", ""), reverse=True)
    return [load_build(store, campaign, environment, r.run_id) for r in done]


def latest_build(store: RawStore, campaign: str, environment: str) -> NpbBuild:
    """The most recently finished successful build of an environment."""
    builds = successful_builds(store, campaign, environment)
    if not builds:
        raise StoreError(f"no successful NPB build in {campaign}/{environment}",
                         file=str(store.root / campaign / environment / STAGE))
    return builds[0]


def matching_build(builds: Iterable[NpbBuild], *, version: str, source: str, klass: str,
                   needs: Iterable[tuple[str, int]]) -> NpbBuild | None:
    """The newest build of the same source and version that has a binary for every (benchmark, processes).

    Any earlier build qualifies, not only the newest: a class S rerun after a class W build
    reuses the class S build, so one campaign's runs of a class all come from one build.
    """
    needs = list(needs)
    for build in builds:
        if build.version != version or build.record.get("source") != source:
            continue
        try:
            for benchmark, nprocs in needs:
                build.binary(benchmark, klass, nprocs)
        except InputError:
            continue
        return build
    return None


