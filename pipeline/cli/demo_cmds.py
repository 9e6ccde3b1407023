"""`eincome demo`: the whole pipeline on simulated data, then the review app."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli import app
from pipeline.cli.common import runtime

console = Console()


@app.command()
def demo(
    points: int = typer.Option(40, help="Collection points to simulate."),
    weeks: int = typer.Option(8, help="Weeks of history to simulate."),
    seed: int = typer.Option(7, help="Simulator seed (same seed, same regency)."),
    top: int = typer.Option(10, help="How many flagged cases to print."),
    serve: bool = typer.Option(True, help="Serve the review app afterwards (Ctrl-C stops it)."),
    host: str = typer.Option("127.0.0.1", help="Review app address."),
    port: int = typer.Option(8000, help="Review app port."),
) -> None:
    """Simulate a regency, ingest, aggregate, train, score; print the flagged cases; serve the app."""
    from pipeline.demo import run_demo

    rt = runtime()
    sample_dir = rt.settings.home / "sample"
    console.print(f"database: {rt.settings.database_url}")
    console.print(f"simulating {points} points x {weeks} weeks into {sample_dir} ...")
    run = run_demo(
        rt.engine,
        rt.models_dir,
        sample_dir,
        points=points,
        weeks=weeks,
        seed=seed,
        progress=sys.stderr.isatty(),
    )
    totals = run.totals()
    summary = Table(title="Pipeline run", show_header=False)
    for label, value in (
        ("feed files", len(run.batches)),
        ("rows read", totals["rows_read"]),
        ("accepted", totals["accepted"]),
        ("quarantined", totals["quarantined"]),
        ("duplicates", totals["duplicates"]),
        ("point-hours scored", run.backfill.hours_scored),
        ("point-hours flagged", run.backfill.flagged),
        ("cases", len(run.cases)),
        ("model version", run.backfill.model_version),
    ):
        summary.add_row(label, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(summary)

    shown = run.cases.head(top)
    flagged = Table(
        title=f"Top {len(shown)} of {len(run.cases)} cases, largest estimated shortfall first"
    )
    for column in ("case", "point", "from (UTC)", "hours", "kind", "severity", "shortfall Rp"):
        flagged.add_column(column, no_wrap=True)
    for case in shown.itertuples():
        hours = int((case.end_at - case.start_at).total_seconds() // 3600)
        flagged.add_row(
            str(case.case_id),
            case.point_id,
            f"{case.start_at:%Y-%m-%d %H:%M}",
            str(hours),
            case.kind,
            case.severity,
            f"{int(case.shortfall_rp):,}",
        )
    console.print(flagged)
    for case in shown.itertuples():
        console.print(
            f"[bold]case {case.case_id}[/] {case.point_id}: {case.reasons}", highlight=False
        )

    logins = ", ".join(f"{user}/{password} ({role})" for user, role, password in run.logins)
    console.print(f"review app: http://{host}:{port}/  logins: {logins}")
    if serve:
        from pipeline.review.app import serve as serve_app

        serve_app(rt.engine, rt.settings, host=host, port=port)
