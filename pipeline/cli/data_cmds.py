"""Commands for reference data: the point registry and the yearly revenue targets."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import typer

from pipeline.cli.common import runtime, say
from pipeline.reference import points as points_registry
from pipeline.reference import targets as targets_store

points_app = typer.Typer(help="The collection-point registry.", no_args_is_help=True)


@points_app.command("load")
def points_load(file: Path = typer.Argument(..., help="Point registry CSV.")) -> None:
    """Load or update collection points from a registry CSV (upsert by point_id)."""
    count = points_registry.load_registry(runtime().engine, file)
    typer.echo(say("%(count)s points loaded from %(file)s", count=count, file=file))


targets_app = typer.Typer(
    help="Yearly PAD targets per revenue type (and district).", no_args_is_help=True
)


@targets_app.command("load")
def targets_load(
    file: Path = typer.Argument(
        ..., help="Targets CSV: year,revenue_type,district,target_rp (district may be empty)."
    ),
) -> None:
    """Load yearly targets from a CSV; replaces the targets of every year the file names."""
    result = targets_store.load_targets(runtime().engine, file, actor="command line")
    typer.echo(
        say(
            "%(count)s targets for %(years)s loaded from %(file)s (%(changed)s changed)",
            count=result.targets,
            years=", ".join(str(y) for y in result.years),
            file=file,
            changed=result.changed,
        )
    )


@targets_app.command("list")
def targets_list(year: int = typer.Option(None, help="Only this year.")) -> None:
    """Print the targets as CSV (the format `targets load` reads)."""
    engine = runtime().engine
    years = [year] if year is not None else targets_store.target_years(engine)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["year", "revenue_type", "district", "target_rp"])
    for each in years:
        for t in targets_store.year_targets(engine, each):
            out.writerow([t.year, t.revenue_type, t.district, t.target_rp])
