"""The commands a researcher reaches for after measuring: ``vhpc campaigns`` (what the store holds) and
``vhpc compare`` (two campaigns or two environments, quantity by quantity). Registered by ``cli.py``;
errors are ``VhpcError`` and become exit codes there.
"""

from __future__ import annotations

import typer

campaigns_app = typer.Typer(help="List the campaigns of the store (name, dates, environments, valid/invalid/failed "
                                 "runs, committed or not); `vhpc campaigns show NAME` details one.",
                            invoke_without_command=True)


@campaigns_app.callback()
def campaigns_cmd(ctx: typer.Context) -> None:
    """List the campaigns of the store, oldest activity first."""
    if ctx.invoked_subcommand is not None:
        return
    from .overview import HEADER, format_table, list_campaigns, table_rows

    found = list_campaigns()
    if not found:
        from .store import RawStore

        typer.echo(f"no campaign under {RawStore().root}: measure one with vhpc run microbench")
        return
    typer.echo(format_table(HEADER, table_rows(found)))


@campaigns_app.command("show")
def campaigns_show_cmd(name: str = typer.Argument(..., help="Campaign to describe.")) -> None:
    """One campaign: where its logs are, when it was measured, per environment and stage how its runs ended."""
    from . import campaigns
    from .names import Campaign
    from .overview import describe, summarize

    typer.echo(describe(summarize(campaigns.for_reading(Campaign.optional(name)))))


def compare_cmd(old: str = typer.Argument(..., help="Old side: CAMPAIGN or CAMPAIGN:ENVIRONMENT."),
                new: str = typer.Argument(..., help="New side: CAMPAIGN or CAMPAIGN:ENVIRONMENT.")) -> None:
    """Compare two campaigns or two environments quantity by quantity (like benchstat): medians, the ratio
    new/old with its distribution-free interval, and a verdict.

    Examples: `vhpc compare c1 c2` (every environment both measured), `vhpc compare c1:local c1:guest`
    (two environments of one campaign), `vhpc compare c1:local c2:local`.
    """
    from .compare import HEADER, Side, compare
    from .overview import format_table

    a, b = Side.parse(old), Side.parse(new)
    rows = compare(a, b)
    typer.echo(f"old: {a}    new: {b}")
    typer.echo(format_table(HEADER, [r.cells() for r in rows]))
    typer.echo("interval: new/old from both medians' order-statistic intervals (coverage at least the product "
               "of theirs, as printed); no verdict without 2 runs per side")
