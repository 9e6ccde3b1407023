"""`eincome demo`: the whole pipeline on simulated data, then the review app."""

from __future__ import annotations

import sys
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from pipeline.cli.common import reasons_text, runtime, say
from pipeline.core.money import group_thousands
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.reference.points import known_points

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()

console = Console()
# Cases not tied to one registered point (e.g. an unattributed bank deposit) show in the
# regency's own zone.
REGION_TZ = ZoneInfo(DEFAULT_TIMEZONE)


@commands.command()
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
    from pipeline.testbed.demo import run_demo

    rt = runtime()
    sample_dir = rt.settings.home / "sample"
    console.print(say("database: %(url)s", url=rt.settings.database_url))
    console.print(
        say(
            "simulating %(points)s points x %(weeks)s weeks into %(folder)s ...",
            points=points,
            weeks=weeks,
            folder=sample_dir,
        )
    )
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
    summary = Table(title=say("Pipeline run"), show_header=False)
    for label, value in (
        (say("feed files"), len(run.batches)),
        (say("rows read"), totals["rows_read"]),
        (say("accepted"), totals["accepted"]),
        (say("quarantined"), totals["quarantined"]),
        (say("duplicates"), totals["duplicates"]),
        (say("point-hours scored"), run.backfill.hours_scored),
        (say("point-hours flagged"), run.backfill.flagged),
        (say("reconciliation gaps"), len(run.reconciliation.gaps)),
        (say("cases (detector + reconciliation)"), len(run.cases)),
        (say("model version"), run.backfill.model_version),
    ):
        summary.add_row(label, group_thousands(value) if isinstance(value, int) else str(value))
    console.print(summary)

    zones = {point: ZoneInfo(row["timezone"]) for point, row in known_points(rt.engine).items()}
    for origin, title in (
        ("detector", say("Top %(shown)s of %(total)s cases flagged by the detector")),
        ("reconciliation", say("Top %(shown)s of %(total)s reconciliation gaps")),
    ):
        _print_cases(run.cases[run.cases["origin"] == origin], title, top, zones)

    logins = ", ".join(f"{user}/{password} ({role})" for user, role, password in run.logins)
    console.print(
        say("review app: %(url)s  logins: %(logins)s", url=f"http://{host}:{port}/", logins=logins)
    )
    if serve:
        from pipeline.review.app import serve as serve_app

        serve_app(rt.engine, rt.settings, host=host, port=port)


def _zone_name(zones: dict[str, ZoneInfo], point_id: str) -> str:
    return zones.get(point_id, REGION_TZ).key


def _print_cases(cases, title: str, top: int, zones: dict[str, ZoneInfo]) -> None:
    """The ``top`` cases by estimated shortfall as a table (times in each point's own timezone),
    then each one's reasons in full."""
    shown = cases.head(top)
    # A borderless table fits an 80-column terminal; the reasons follow in full below it.
    table = Table(
        title=title % {"shown": len(shown), "total": len(cases)} + say(", largest shortfall first"),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns = (say("case"), say("point"), say("start (local)"), say("kind"), say("severity"))
    for column in columns:
        table.add_column(column, no_wrap=True)
    table.add_column(say("shortfall Rp"), no_wrap=True, justify="right")
    for case in shown.itertuples():
        table.add_row(
            str(case.case_id),
            case.point_id,
            f"{case.start_at.astimezone(zones.get(case.point_id, REGION_TZ)):%Y-%m-%d %H:%M}",
            case.kind,
            case.severity,
            group_thousands(int(case.shortfall_rp)),
        )
    console.print(table)
    for case in shown.itertuples():
        reasons = reasons_text(case.reason_parts, case.reasons, _zone_name(zones, case.point_id))
        console.print(
            say("case %(id)s", id=case.case_id), f"{case.point_id}: {reasons}", highlight=False
        )
