"""``vhpc cloud up|status|down``: a cloud environment of an inventory, created, listed, torn down.

Only prints; errors are raised as ``VhpcError`` and turned into one line and an exit code by
``vhpclib.cli.main`` (Ctrl-C and SIGTERM unwind through ``up``, which terminates what it created).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

cloud_app = typer.Typer(no_args_is_help=True,
                        help="Cloud clusters (EC2) vHPC creates, measures and always tears down.")

InvOpt = typer.Option(..., "--inventory", "-i", help="Inventory YAML with a 'cloud:' environment.")
EnvOpt = typer.Option(..., "--env", "-e", help="The environment (its 'cloud:' section says what to create).")


def target(inventory: Path, env: str, campaign: str | None = None):
    """The cloud environment ``env`` of ``inventory`` (``InventoryError`` if it has no ``cloud:`` section)."""
    from ..config import load_inventory
    from ..exceptions import InventoryError
    from .target import target as target_of

    inv = load_inventory(inventory)
    if inv.environment(env).section("cloud") is None:
        raise InventoryError(f"environment {env!r} has no 'cloud:' section", file=str(inventory),
                             key=f"environments.{env}")
    return target_of(inv, env, campaign or "")


@cloud_app.command("up")
def cloud_up(inventory: Path = InvOpt, env: str = EnvOpt,
             campaign: Optional[str] = typer.Option(None, "--campaign", help="Campaign to tag the resources with."),
             yes: bool = typer.Option(False, "--yes", help="Accept the estimated cost printed (required to create)."),
             keep: bool = typer.Option(False, "--keep", help="On an error or Ctrl-C, keep what was created.")) -> None:
    """Create what the 'cloud:' section asks for, wait for strict SSH on every host, record the hosts."""
    from .provision import up

    record = up(target(inventory, env, campaign), yes=yes, keep=keep, log=print)
    for host in record["hosts"]:
        print(f"{host['name']}: {host.get('user')}@{host['address']}:{host['port']} (MPI: {host['mpi_address']})")
    print(f"known_hosts: {record['known_hosts']} (from {record['host_keys_from']})")


@cloud_app.command("status")
def cloud_status(inventory: Path = InvOpt, env: Optional[str] = typer.Option(None, "--env", "-e",
                                                                            help="Only this environment.")) -> None:
    """List every vHPC-tagged instance that is not terminated: environment, type, state, age, cost so far."""
    from .cost import ON_DEMAND_USD
    from .provision import connect
    from .teardown import status

    t = target(inventory, env) if env else _first_cloud(inventory)
    aws = connect(t)
    rows = status(aws, t.filters() if env else [{"Name": "tag:vhpc:inventory", "Values": [t.inventory]}])
    if not rows:
        print("nothing running")
        return
    total = 0.0
    for r in rows:
        price = t.spec.hourly_usd if t.spec.hourly_usd is not None else ON_DEMAND_USD.get(r["type"] or "")
        cost = None if price is None or r["age_h"] is None else price * r["age_h"]
        total += cost or 0.0
        age = "?" if r["age_h"] is None else f"{r['age_h'] * 60:.0f} min"
        print(f"{r['id']}: {r['inventory']}/{r['environment']} campaign={r['campaign']} {r['type']} {r['state']} "
              f"age={age} cost={'unknown' if cost is None else f'~${cost:.2f}'}")
    print(f"{len(rows)} instance(s), about ${total:.2f} so far (estimate)")


def _first_cloud(inventory: Path):
    from ..config import load_inventory
    from ..exceptions import InventoryError

    inv = load_inventory(inventory)
    for name, env in inv.environments.items():
        if env.section("cloud") is not None:
            return target(inventory, name)
    raise InventoryError("no environment has a 'cloud:' section", file=str(inventory), key="environments")


@cloud_app.command("down")
def cloud_down(inventory: Path = InvOpt, env: str = EnvOpt) -> None:
    """Terminate every instance tagged for the environment, delete its groups, wait until they are gone."""
    from .teardown import down

    count = down(target(inventory, env), log=print)
    print(f"{env}: {count} instance(s) terminated; nothing tagged left" if count else f"{env}: nothing was running")
