"""Detection commands: train, score, backfill, backtest, anomalies, cases, suppress."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import pandas as pd
import typer

from pipeline.cli.common import moment_option, reasons_text, runtime, say
from pipeline.core.errors import UnusableInputError

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _span(engine, start: str | None, end: str | None) -> tuple[datetime, datetime]:
    from pipeline.detection.features import data_span

    span = data_span(engine)
    if (start is None or end is None) and span is None:
        raise UnusableInputError(
            say("no hour aggregates yet: ingest feeds first, or give --start and --end")
        )
    return (
        moment_option(start, "--start") if start else span[0],
        moment_option(end, "--end") if end else span[1],
    )


def _print_frame(frame: pd.DataFrame, fmt: OutputFormat, title: str) -> None:
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert(UTC).map(lambda t: t.isoformat())
    if fmt is OutputFormat.csv:
        typer.echo(frame.to_csv(index=False), nl=False)
    elif fmt is OutputFormat.json:
        typer.echo(json.dumps(frame.to_dict("records"), default=str, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        for column in frame.columns:
            table.add_column(column, overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(*("" if pd.isna(v) else str(v) for v in row))
        Console(width=200).print(table)


def _said_reasons(frame: pd.DataFrame) -> list[str]:
    """The reasons column in this run's language (phrases where stored, else the text)."""
    parts = frame["reason_parts"] if "reason_parts" in frame else [None] * len(frame)
    return [reasons_text(p, t) for p, t in zip(parts, frame["reasons"], strict=True)]


def _calendar(events: Path | None):
    from pipeline.reference.calendar import calendar_from_file

    return calendar_from_file(events)


EVENTS_HELP = "Regional events CSV (date,name) treated like public holidays."


@commands.command("train")
def train(
    start: str = typer.Option(
        None, help="Training window start, ISO-8601 with offset (default: first data)."
    ),
    end: str = typer.Option(None, help="Training window end, exclusive (default: end of data)."),
    events: Path = typer.Option(None, help=EVENTS_HELP),
) -> None:
    """Train a detector model on a window of history and store it as a new version."""
    from pipeline.detection.training import train_model

    rt = runtime()
    begin, finish = _span(rt.engine, start, end)
    version = train_model(rt.engine, rt.models_dir, begin, finish, calendar=_calendar(events))
    typer.echo(
        say(
            "model %(version)s trained on %(start)s .. %(end)s",
            version=version,
            start=begin.isoformat(),
            end=finish.isoformat(),
        )
    )


@commands.command("score")
def score(
    start: str = typer.Option(..., help="Range start, ISO-8601 with offset."),
    end: str = typer.Option(..., help="Range end, exclusive."),
    model: str = typer.Option(
        None, help="Model version (default: the newest trained on data before each week)."
    ),
    events: Path = typer.Option(None, help=EVENTS_HELP),
) -> None:
    """Score a range point in time (each week's usual levels and model from the weeks before
    it); replaces that range's flags and open cases."""
    from pipeline.detection.backfill import score_range
    from pipeline.detection.late_data import rescore_late_hours

    rt = runtime()
    calendar = _calendar(events)
    result = score_range(
        rt.engine,
        rt.models_dir,
        moment_option(start, "--start"),
        moment_option(end, "--end"),
        calendar=calendar,
        model_version=model,
    )
    typer.echo(
        say(
            "model %(version)s: %(scored)s point-hours scored, %(flagged)s flagged,"
            " %(suppressed)s suppressed, %(cases)s open cases; usual levels from data before"
            " %(until)s",
            version=result.model_version,
            scored=result.hours_scored,
            flagged=result.flagged,
            suppressed=result.suppressed,
            cases=result.cases_open,
            until=result.usual_until.isoformat(),
        )
    )
    # Hours before the range's end that rows reached after they were scored: judged again.
    late = rescore_late_hours(rt.engine, rt.models_dir, until=result.end, calendar=calendar)
    if late.point_hours:
        typer.echo(
            say(
                "late data: %(hours)s point-hours re-scored (%(judged)s point-hours judged),"
                " %(cleared)s cases cleared, %(left)s acted-on cases left as they are",
                hours=late.point_hours,
                judged=late.hours_scored,
                cleared=len(late.cases_cleared),
                left=len(late.cases_left),
            )
        )


@commands.command("backfill")
def backfill_cmd(
    start: str = typer.Option(..., help="Range start, ISO-8601 with offset."),
    end: str = typer.Option(..., help="Range end, exclusive."),
    events: Path = typer.Option(None, help=EVENTS_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    min_history_weeks: int = typer.Option(
        4, "--min-history-weeks", min=1, help="Score nothing before this much history."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Processes to fit the weekly models side by side (the weeks are then scored in "
        "order; the same flags and cases as one process).",
    ),
) -> None:
    """Aggregate where needed and score a range walking forward week by week, as the live
    pipeline would have (each week's model fitted on the weeks before it, on the weekly
    retrain's rhythm); resumable, idempotent."""
    from datetime import timedelta

    rt = runtime()
    begin, finish = moment_option(start, "--start"), moment_option(end, "--end")
    min_history = timedelta(weeks=min_history_weeks)
    if workers > 1:
        from pipeline.detection.fanout import plan_backfill, prepare_range, run_plan

        prepare_range(rt.engine, begin, finish)
        plan = plan_backfill(rt.engine, begin, finish, min_history=min_history)
        result = run_plan(
            rt.engine, rt.models_dir, plan, workers=workers, calendar=_calendar(events)
        )
    else:
        from pipeline.detection.backfill import backfill

        result = backfill(
            rt.engine,
            rt.models_dir,
            begin,
            finish,
            progress=progress,
            calendar=_calendar(events),
            min_history=min_history,
        )
    if result.scored_from is not None and result.scored_from > result.start:
        typer.echo(
            say(
                "not scored before %(start)s: less than %(weeks)s week(s) of history before it",
                start=result.scored_from.isoformat(),
                weeks=min_history_weeks,
            )
        )
    typer.echo(
        say(
            "%(models)s model(s) (%(trained)s fitted now), the last %(version)s: %(weeks)s"
            " week(s), %(skipped)s already done; %(scored)s point-hours scored, %(flagged)s"
            " flagged",
            models=len(result.models),
            trained=result.trained,
            version=result.model_version or "-",
            weeks=result.chunks,
            skipped=result.chunks_skipped,
            scored=result.hours_scored,
            flagged=result.flagged,
        )
    )


@commands.command("anomalies")
def anomalies_cmd(
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
    start: str = typer.Option(None, help="Only hours from this time."),
    end: str = typer.Option(None, help="Only hours before this time."),
) -> None:
    """Flagged point-hours: point_id, hour_start (UTC ISO), score, severity, reasons, status.

    The reasons are in the language of the run (--lang, EINCOME_LANGUAGE); the column names
    and JSON keys are English in every language."""
    from pipeline.casework.cases import list_anomalies

    frame = list_anomalies(
        runtime().engine,
        moment_option(start, "--start") if start else None,
        moment_option(end, "--end") if end else None,
    )
    frame["score"] = frame["score"].round(4)
    frame["reasons"] = _said_reasons(frame)
    columns = ["point_id", "hour_start", "score", "severity", "reasons", "status"]
    if format is not OutputFormat.table:
        columns += ["kind", "shortfall_rp", "operators", "case_id", "model_version"]
    _print_frame(frame[columns], format, say("Flagged point-hours"))


@commands.command("cases")
def cases_cmd(
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
    status: str = typer.Option(None, help="Only cases with this status (open, confirmed, ...)."),
) -> None:
    """Cases: runs of flagged hours of one point, with kind, shortfall, operators and status."""
    from pipeline.casework.cases import list_cases

    frame = list_cases(runtime().engine, status=status)
    frame["score"] = frame["score"].round(4)
    frame["reasons"] = _said_reasons(frame)
    columns = [
        "case_id",
        "point_id",
        "start_at",
        "end_at",
        "kind",
        "severity",
        "score",
        "shortfall_rp",
        "operators",
        "status",
        "reasons",
    ]
    if format is not OutputFormat.table:
        columns += ["origin", "model_version", "assignee", "details"]
    _print_frame(frame[columns], format, say("Cases"))


@commands.command("backtest")
def backtest_cmd(
    model: str = typer.Option(..., help="Model version to replay."),
    start: str = typer.Option(..., help="Range start, ISO-8601 with offset."),
    end: str = typer.Option(..., help="Range end, exclusive."),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
    events: Path = typer.Option(None, help=EVENTS_HELP),
) -> None:
    """Replay a stored model over a past range and show what it would have flagged (no writes)."""
    from pipeline.detection.backtest import backtest, backtest_overlap

    rt = runtime()
    overlap = backtest_overlap(
        rt.engine,
        rt.models_dir,
        model,
        moment_option(start, "--start"),
        moment_option(end, "--end"),
    )
    if overlap and format is OutputFormat.table:
        typer.echo(
            say(
                "note: %(model)s was trained on %(overlap)s of this range, which it judges in"
                " sample",
                model=model,
                overlap=overlap,
            )
        )
    flags, found = backtest(
        rt.engine,
        rt.models_dir,
        model,
        moment_option(start, "--start"),
        moment_option(end, "--end"),
        calendar=_calendar(events),
    )
    if format is OutputFormat.table:
        typer.echo(
            say(
                "model %(model)s would have flagged %(hours)s point-hours in %(cases)s case(s)",
                model=model,
                hours=len(flags),
                cases=len(found),
            )
        )
    found = found.assign(reasons=_said_reasons(found))
    _print_frame(
        found[
            [
                "point_id",
                "start_at",
                "end_at",
                "kind",
                "severity",
                "score",
                "shortfall_rp",
                "operators",
                "reasons",
            ]
        ],
        format,
        say("Backtest of %(model)s", model=model),
    )


suppress_app = typer.Typer(
    help="Suppression windows: closures, maintenance, known false alarms.", no_args_is_help=True
)


@suppress_app.command("load")
def suppress_load(
    file: Path = typer.Argument(..., help="Closures CSV: point_id, starts_at, ends_at, reason."),
) -> None:
    """Load announced closures/maintenance windows (loading a file twice adds nothing)."""
    from pipeline.reference.suppressions import load_closures

    added = load_closures(runtime().engine, file)
    typer.echo(say("%(added)s suppression window(s) added from %(file)s", added=added, file=file))


@suppress_app.command("add")
def suppress_add(
    point_id: str = typer.Option(..., "--point", help="Point id."),
    start: str = typer.Option(..., help="Window start, ISO-8601 with offset."),
    end: str = typer.Option(..., help="Window end, exclusive."),
    reason: str = typer.Option(..., help="Why (shown to auditors)."),
    kind: str = typer.Option(None, help="Only this pattern kind (default: every kind)."),
    by: str = typer.Option("ops", help="Who adds it."),
) -> None:
    """Add one suppression window."""
    from pipeline.reference.suppressions import add_suppression

    ident = add_suppression(
        runtime().engine,
        point_id=point_id,
        starts_at=moment_option(start, "--start"),
        ends_at=moment_option(end, "--end"),
        reason=reason,
        kind=kind,
        created_by=by,
    )
    typer.echo(say("suppression %(id)s added for %(point)s", id=ident, point=point_id))


@suppress_app.command("list")
def suppress_list(
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, csv or json."),
) -> None:
    """List suppression windows."""
    from pipeline.reference.suppressions import suppression_windows

    frame = suppression_windows(
        runtime().engine, datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
    )
    _print_frame(frame, format, say("Suppressions"))
