"""Commands for reference data: the point registry."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import runtime, say
from pipeline.reference import points as points_registry

points_app = typer.Typer(help="The collection-point registry.", no_args_is_help=True)


@points_app.command("load")
def points_load(file: Path = typer.Argument(..., help="Point registry CSV.")) -> None:
    """Load or update collection points from a registry CSV (upsert by point_id)."""
    count = points_registry.load_registry(runtime().engine, file)
    typer.echo(say("%(count)s points loaded from %(file)s", count=count, file=file))
