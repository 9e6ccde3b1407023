"""A reconciliation run: find every gap in a window as of a day, raise them as cases; and the
windows the scheduled (daily, monthly) runs reconcile."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from pipeline.core.errors import UnusableInputError
from pipeline.reconciliation.bank import unmatched_gaps
from pipeline.reconciliation.collectors import collector_gaps
from pipeline.reconciliation.config import ReconConfig
from pipeline.reconciliation.gaps import Gap, ReconResult, merge_runs
from pipeline.reconciliation.raise_cases import raise_cases
from pipeline.reconciliation.tax import tax_gaps
from pipeline.reference.points import known_points

SCOPES = ("tax", "collector", "bank")


def find_gaps(
    engine: Engine,
    start: date,
    end: date,
    *,
    as_of: date,
    config: ReconConfig | None = None,
    scopes: tuple[str, ...] = SCOPES,
) -> ReconResult:
    """Every gap in [start, end) as of ``as_of`` (money not yet due is no gap); raises no cases."""
    if end <= start:
        raise UnusableInputError(
            f"reconciliation window {start}..{end} is empty: end must be after start"
        )
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise UnusableInputError(
            f"reconciliation scope(s) {', '.join(unknown)} not one of {', '.join(SCOPES)}"
        )
    config = config or ReconConfig()
    point_rows = known_points(engine)
    result = ReconResult(start=start, end=end, as_of=as_of)
    if "tax" in scopes:
        result.gaps += tax_gaps(engine, point_rows, start, end, as_of, config, result)
    if "collector" in scopes:
        result.gaps += collector_gaps(engine, point_rows, start, end, as_of, config, result)
    if "bank" in scopes:
        result.gaps += unmatched_gaps(engine, point_rows, start, end, config, result)
    result.gaps = merge_runs(result.gaps)
    return result


def reconcile(
    engine: Engine,
    start: date,
    end: date,
    *,
    as_of: date,
    config: ReconConfig | None = None,
    scopes: tuple[str, ...] = SCOPES,
    now: datetime | None = None,
) -> ReconResult:
    """Find the gaps in [start, end) and raise them as cases in the review queue (idempotent)."""
    result = find_gaps(engine, start, end, as_of=as_of, config=config, scopes=scopes)
    return raise_cases(
        engine, result.gaps, now=now, clear_within=(start, end), clear_scopes=scopes, result=result
    )


def gap_summary(gap: Gap) -> dict:
    """A flat dict for printing: the three numbers side by side and the difference."""
    return {
        "kind": gap.kind,
        "subject": gap.subject,
        "point_id": gap.point_id,
        "from": gap.start_day.isoformat(),
        "to": (gap.end_day - timedelta(days=1)).isoformat(),
        "recorded_rp": gap.recorded,
        "declared_rp": gap.declared,
        "deposited_rp": gap.deposited,
        "difference_rp": gap.difference_rp,
        "shortfall_rp": gap.shortfall_rp,
        "reasons": gap.reasons,
    }


def interval_window(schedule: str, as_of: date, lookback_days: int = 8) -> tuple[date, date, tuple]:
    """The window and scopes a scheduled run reconciles, from the day its interval ends.

    ``daily``: the trailing ``lookback_days`` of collector days and bank credits. ``monthly``:
    the tax period (calendar month) before the month ``as_of`` falls in.
    """
    if schedule == "daily":
        return as_of - timedelta(days=lookback_days), as_of, ("collector", "bank")
    if schedule == "monthly":
        period_end = as_of.replace(day=1)
        return (period_end - timedelta(days=1)).replace(day=1), period_end, ("tax",)
    raise UnusableInputError(f"schedule {schedule!r} is not daily or monthly")


def reconcile_interval(
    engine: Engine, schedule: str, as_of: date, config: ReconConfig, lookback_days: int = 8
) -> dict:
    """A scheduled run's whole job: reconcile the scheduled window as of the interval's end and
    return a summary for the log/XCom. Settings come from the caller (an entry point)."""
    start, end, scopes = interval_window(schedule, as_of, lookback_days)
    result = reconcile(engine, start, end, as_of=as_of, config=config, scopes=scopes)
    return {
        "window": [start.isoformat(), end.isoformat()],
        "as_of": as_of.isoformat(),
        "scopes": list(scopes),
        "gaps": result.by_kind(),
        "cases_created": result.cases_created,
        "cases_updated": result.cases_updated,
        "cases_kept": result.cases_kept,
        "cases_cleared": result.cases_cleared,
    }
