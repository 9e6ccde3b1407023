"""Commands for the quarantine: `eincome quarantine list|export|release` (the app's
/ops/quarantine page does the same). The work is ``pipeline.intake.quarantine``'s."""

from __future__ import annotations

import getpass
from datetime import timedelta
from pathlib import Path

import typer

from pipeline.cli.common import phrased, runtime, say
from pipeline.cli.detect_cmds import OutputFormat, _print_frame
from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE, local_midnight, parse_day

quarantine_app = typer.Typer(
    help="Quarantined rows across batches: list, export as CSV, release once the cause is fixed.",
    no_args_is_help=True,
)

SOURCE = typer.Option(None, "--source", help="Only rows of this source (e.g. landing:kota).")
POINT = typer.Option(None, "--point", help="Only rows for this point id.")
REASON = typer.Option(
    None, "--reason", help="Only rows whose reasons contain this text (any case)."
)
DAY_FROM = typer.Option(None, "--from", help="Quarantined on or after this local day (YYYY-MM-DD).")
DAY_TO = typer.Option(None, "--to", help="Quarantined on or before this local day (YYYY-MM-DD).")


def _filter(source, point, reason, day_from, day_to, state="open", ids=()):
    from pipeline.intake.quarantine import QuarantineFilter

    start, end = parse_day(day_from, "--from"), parse_day(day_to, "--to")
    return QuarantineFilter(
        source=source,
        point_id=point,
        reason=reason,
        start=local_midnight(start, DEFAULT_TIMEZONE) if start else None,
        end=local_midnight(end + timedelta(days=1), DEFAULT_TIMEZONE) if end else None,
        state=state,
        ids=tuple(ids),
    )


@quarantine_app.command("list")
def quarantine_list(
    source: str = SOURCE,
    point: str = POINT,
    reason: str = REASON,
    day_from: str = DAY_FROM,
    day_to: str = DAY_TO,
    state: str = typer.Option("open", "--state", help="open, released, requarantined or all."),
    page: int = typer.Option(1, "--page", min=1, help="Page of 50 rows, newest first."),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
) -> None:
    """Quarantined rows across batches, newest first: id, batch, source, point, reasons, state."""
    import pandas as pd

    from pipeline.intake.quarantine import list_quarantine, row_state

    found = list_quarantine(
        runtime().engine,
        _filter(source, point, reason, day_from, day_to, state),
        page,
        page_size=50,
    )
    frame = pd.DataFrame(
        [
            {
                "quarantine_id": r.quarantine_id,
                "batch_id": r.batch_id,
                "source": r.source,
                "quarantined_at": r.quarantined_at,
                "line_no": r.line_no,
                "point_id": r.point_id,
                "txn_id": r.txn_id,
                "kind": r.kind,
                "reasons": r.reasons,
                "state": row_state(r),
                "release_id": r.release_id,
            }
            for r in found.rows
        ],  # fmt: skip
        columns=[
            "quarantine_id",
            "batch_id",
            "source",
            "quarantined_at",
            "line_no",
            "point_id",
            "txn_id",
            "kind",
            "reasons",
            "state",
            "release_id",
        ],  # fmt: skip
    )
    if not frame.empty:
        frame["quarantined_at"] = pd.to_datetime(frame["quarantined_at"], utc=True)
    _print_frame(
        frame,
        format,
        say(
            "Quarantined rows: %(total)s (page %(page)s of %(pages)s)",
            total=found.total,
            page=found.page,
            pages=found.pages,
        ),  # fmt: skip
    )


@quarantine_app.command("export")
def quarantine_export(
    source: str = SOURCE,
    point: str = POINT,
    reason: str = REASON,
    day_from: str = DAY_FROM,
    day_to: str = DAY_TO,
    state: str = typer.Option("all", "--state", help="open, released, requarantined or all."),
    out: Path = typer.Option(None, "--out", help="Write the CSV here (default: standard output)."),
) -> None:
    """Every matching row as CSV, raw row included (the app's export, the same columns)."""
    from pipeline.intake.quarantine import export_quarantine_csv

    body, rows = export_quarantine_csv(
        runtime().engine, _filter(source, point, reason, day_from, day_to, state)
    )
    if out is None:
        typer.echo(body.decode("utf-8-sig"), nl=False)
        return
    try:
        out.write_bytes(body)
    except OSError as exc:
        raise UnusableInputError(
            say("cannot write %(file)s: %(why)s", file=out, why=exc.strerror)
        ) from None
    typer.echo(say("%(n)s rows written to %(file)s", n=rows, file=out))


@quarantine_app.command("release")
def quarantine_release(
    source: str = SOURCE,
    point: str = POINT,
    reason: str = REASON,
    day_from: str = DAY_FROM,
    day_to: str = DAY_TO,
    ids: list[int] = typer.Option(None, "--id", help="Only this quarantined row (repeat)."),
    every: bool = typer.Option(False, "--all", help="Release every open row (no filter given)."),
    zone: bool = typer.Option(
        False, "--zone-from-registry", help="Read a time without a UTC offset in its point's zone."
    ),
    by: str = typer.Option(None, "--by", help="Who releases (recorded; default: your login)."),
) -> None:
    """Re-admit open quarantined rows once the cause is fixed: re-validated by the same suite and
    stored through the ingest path; still-bad rows stay quarantined with the new reason."""
    from pipeline.intake.quarantine import release_quarantine

    if not (source or point or reason or day_from or day_to or ids or every):
        raise UnusableInputError(
            say("give a filter (--source, --point, --reason, --from, --to, --id) or --all")
        )
    rt = runtime()
    result = release_quarantine(
        rt.engine,
        _filter(source, point, reason, day_from, day_to, "open", ids or ()),
        actor=(by or getpass.getuser())[:64],
        naive_times_in_point_zone=zone,
        future_tolerance=timedelta(minutes=rt.settings.future_tolerance_minutes),
        earliest=rt.settings.earliest_time,
    )
    if result.release_id is None:
        typer.echo(say("No open rows to release: nothing was changed."))
        return
    typer.echo(phrased(result.summary()))
