"""NPB-MZ per inventory environment: build in one, distribute to every environment that reuses it.

An environment's ``benchmarks.npb`` either has a ``source`` (it builds) or a
``built_in: <environment>`` (it runs the binaries that environment built,
"build once, run everywhere"). These functions are what ``vhpc npb build`` /
``vhpc npb distribute`` and the application stage call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..config import Inventory
from ..exceptions import InventoryError
from ..remote import ConnectionPool
from ..store import RawStore
from .build import build_env, build_npb
from .builds import NpbBuild, latest_build, load_build
from .distribute import Deployment, distribute

if TYPE_CHECKING:
    from .spec import NpbSpec


#: Upper bound of one NPB build step when the inventory sets no timeout_s (runs derive theirs).
BUILD_TIMEOUT_S = 3600.0

def npb_spec(inventory: Inventory, environment: str) -> NpbSpec:
    """The environment's ``benchmarks.npb``; raises ``InventoryError`` when it has none."""
    spec = inventory.environment(environment).benchmarks.npb
    if spec is None:
        raise InventoryError(f"environment {environment!r} has no benchmarks.npb section",
                             file=str(inventory.source) if inventory.source else None,
                             key=f"environments.{environment}.benchmarks.npb")
    return spec


def build_environment_of(inventory: Inventory, environment: str) -> str:
    """The environment whose build ``environment`` runs: itself, or its ``built_in``."""
    spec = npb_spec(inventory, environment)
    if spec.built_in is None:
        return environment
    inventory.environment(spec.built_in)  # must exist
    if npb_spec(inventory, spec.built_in).source is None:
        raise InventoryError(f"{environment!r} reuses the build of {spec.built_in!r}, which has no source to build",
                             file=str(inventory.source) if inventory.source else None,
                             key=f"environments.{environment}.benchmarks.npb.built_in")
    return spec.built_in


def build_in_environment(inventory: Inventory, environment: str, campaign: str, *, benchmarks: Sequence[str],
                         klass: str, nprocs: Iterable[int] | None = None, store: RawStore | None = None,
                         pool: ConnectionPool | None = None, build_id: str | None = None) -> NpbBuild:
    """Build on the environment's launch host (its first host when none is set), into the raw store."""
    env = inventory.environment(environment)
    spec = npb_spec(inventory, environment)
    if spec.source is None:
        raise InventoryError(f"environment {environment!r} has no benchmarks.npb.source to build from"
                             + (f" (it reuses {spec.built_in!r}'s build)" if spec.built_in else ""),
                             file=str(inventory.source) if inventory.source else None,
                             key=f"environments.{environment}.benchmarks.npb.source")
    own_pool = pool is None
    pool = pool or ConnectionPool(inventory)
    try:
        executor = pool.get(env.launch_host, env)
        return build_npb(executor, spec, benchmarks=benchmarks, klass=klass, nprocs=nprocs, campaign=campaign,
                         environment=environment, store=store, build_id=build_id, workdir=env.work_root,
                         env=build_env(env), timeout=env.timeout_s or BUILD_TIMEOUT_S)
    finally:
        if own_pool:
            pool.close()


def build_for(inventory: Inventory, environment: str, campaign: str, *, store: RawStore | None = None,
              build_id: str | None = None) -> NpbBuild:
    """The stored build ``environment`` runs: ``build_id`` if given, else the newest successful one."""
    store = store or RawStore()
    source_env = build_environment_of(inventory, environment)
    if build_id is not None:
        return load_build(store, campaign, source_env, build_id)
    return latest_build(store, campaign, source_env)


def distribute_to_environment(inventory: Inventory, environment: str, build: NpbBuild, *,
                              pool: ConnectionPool | None = None,
                              names: Sequence[str] | None = None) -> list[Deployment]:
    """Copy ``build``'s binaries to every compute host of ``environment`` (under its workdir) and verify them."""
    env = inventory.environment(environment)
    own_pool = pool is None
    pool = pool or ConnectionPool(inventory)
    try:
        executors = [pool.get(host, env) for host in env.hosts]
        return distribute(build, executors, workdir=env.work_root, names=names)
    finally:
        if own_pool:
            pool.close()
