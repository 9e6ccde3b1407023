"""Late data re-scored: hours that rows reached after they were scored are judged again.

A tapping box that was offline syncs its sales hours later. The hourly run had judged those hours
from no sales ("device off"); ingest queued them (``store.rescore_queue``), and the next scoring
run calls ``rescore_late_hours``: the local days of the queued point-hours (the day features they
feed) and the spans of the open cases they reach are judged again, each week with the model it
had (``backfill.score_range``: the newest trained before it). An untouched open case none of
whose hours is flagged any more is closed (``case_store.clear_case``) with the reason in its
trail ("sales arrived late: 12 transactions at 2026-03-01 14:05 Asia/Jakarta"); then the new flags are recorded as any
scoring run records them. A case a person has acted on (``case_store.ACTED_ON``) is left as it
is: the rebuild keeps it, and nothing here writes to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, select

from pipeline.casework.case_store import acted_on_ids, clear_case
from pipeline.casework.cases import drop_suppressed
from pipeline.core.errors import UnusableInputError
from pipeline.core.phrases import Phrase, phrase
from pipeline.core.times import DEFAULT_TIMEZONE, local_midnight
from pipeline.detection.backfill import score_range
from pipeline.reference.calendar import Calendar
from pipeline.reference.points import read_registry
from pipeline.store.rescore_queue import RescoreRequest, pending, settle
from pipeline.store.schema import cases

ACTOR = "pipeline"  # who closes a case late data disproved, in its trail


@dataclass(frozen=True)
class LateRescoreResult:
    point_hours: int  # queued point-hours taken up
    ranges: tuple[tuple[datetime, datetime], ...]  # what was re-scored
    hours_scored: int
    cases_cleared: tuple[int, ...]
    cases_left: tuple[int, ...]  # reached by late rows, but a person has acted on them
    ranges_skipped: tuple[tuple[datetime, datetime], ...] = ()  # no model was in force then


def _zone(registry: dict[str, dict], point_id: str) -> ZoneInfo:
    return ZoneInfo((registry.get(point_id) or {}).get("timezone") or DEFAULT_TIMEZONE)


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def late_reason(requests: list[RescoreRequest], zone: ZoneInfo) -> Phrase:
    """The trail's words for the late rows of one case: how many, and the local time the first
    of them is from."""
    count = sum(r.late_rows for r in requests)
    first = min(r.first_at for r in requests).astimezone(zone)
    figures = dict(rows_n=count, first_at=first, tz=zone.key)
    if count == 1:
        return phrase(
            "sales arrived late: %(rows_n)s transaction at %(first_at)s %(tz)s;"
            " re-scored, no hour of the case is flagged any more",
            **figures,
        )
    return phrase(
        "sales arrived late: %(rows_n)s transactions at %(first_at)s %(tz)s;"
        " re-scored, no hour of the case is flagged any more",
        **figures,
    )


def rescore_late_hours(
    engine: Engine,
    models_dir: Path,
    *,
    until: datetime,
    calendar: Calendar | None = None,
    hindsight: bool = False,
    now: datetime | None = None,
) -> LateRescoreResult:
    """Re-score the queued point-hours before ``until`` (the end of what scoring has reached),
    close the open cases they disprove, record the new flags and clear the queue."""
    now = now or datetime.now(UTC)
    with engine.connect() as connection:
        requests = pending(connection, until=until)
        if not requests:
            return LateRescoreResult(0, (), 0, (), (), ())
        registry = read_registry(connection)
        reached = _reached_cases(connection, requests)
    spans = []
    for r in requests:
        zone = _zone(registry, r.point_id)
        day = r.hour_start.astimezone(zone).date()
        spans.append((local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)))
    spans += [(c.start_at, c.end_at) for c in reached]
    ranges = [(a, min(b, until)) for a, b in _merged(spans) if a < until]
    cleared: list[int] = []
    left: list[int] = []
    done, skipped = [], []
    hours = 0

    def close_disproved(a: datetime, b: datetime):
        def before_recording(flags: pd.DataFrame) -> None:
            flags = drop_suppressed(engine, flags, a, b)
            with engine.begin() as connection:
                for case in reached:
                    if a <= case.start_at and case.end_at <= b:
                        verdict = _close_if_disproved(
                            connection, case, flags, requests, registry, now
                        )
                        if verdict == "cleared":
                            cleared.append(case.case_id)
                        elif verdict == "left":
                            left.append(case.case_id)

        return before_recording

    for a, b in ranges:
        try:
            result = score_range(
                engine,
                models_dir,
                a,
                b,
                calendar=calendar,
                hindsight=hindsight,
                before_recording=close_disproved(a, b),
            )
        except UnusableInputError:
            # No model was in force then (history scored in hindsight only): re-judging it
            # point in time is impossible, and failing every hourly run for it would stop the
            # live scoring; the old flags stand and the result says which range.
            skipped.append((a, b))
            continue
        hours += result.hours_scored
        done.append((a, b))
    with engine.begin() as connection:
        settle(connection, requests)
    return LateRescoreResult(
        len(requests), tuple(done), hours, tuple(cleared), tuple(left), tuple(skipped)
    )


def _close_if_disproved(connection, case, flags, requests, registry, now) -> str:
    """Clear ``case`` if none of its hours is among the new ``flags``: "cleared", "holds" (some
    hour still flagged: the rebuild reshapes it) or "left" (a person has acted on it)."""
    if case.acted_on:
        return "left"
    still = flags[
        (flags["point_id"] == case.point_id)
        & (flags["hour_start"] >= pd.Timestamp(case.start_at))
        & (flags["hour_start"] < pd.Timestamp(case.end_at))
    ]
    if len(still):
        return "holds"
    ours = [
        r
        for r in requests
        if r.point_id == case.point_id and case.start_at <= r.hour_start < case.end_at
    ]
    reason = late_reason(ours, _zone(registry, case.point_id))
    if clear_case(
        connection, case.case_id, reason=reason.english(), parts=[reason], actor=ACTOR, now=now
    ):
        return "cleared"
    return "left"  # a person acted on it meanwhile


@dataclass(frozen=True)
class _ReachedCase:
    case_id: int
    point_id: str
    start_at: datetime
    end_at: datetime
    acted_on: bool


def _reached_cases(connection, requests: list[RescoreRequest]) -> list[_ReachedCase]:
    """Detector cases (not already cleared) that a queued point-hour falls inside."""
    c = cases.c
    first = min(r.hour_start for r in requests)
    last = max(r.hour_start for r in requests)
    rows = connection.execute(
        select(c.case_id, c.point_id, c.start_at, c.end_at)
        .where(c.origin == "detector", c.status != "cleared")
        .where(c.start_at <= last, c.end_at > first)
        .order_by(c.case_id)
    ).all()
    hours: dict[str, list[datetime]] = {}
    for r in requests:
        hours.setdefault(r.point_id, []).append(r.hour_start)
    found = [
        row
        for row in rows
        if any(row.start_at <= h < row.end_at for h in hours.get(row.point_id, ()))
    ]
    acted = acted_on_ids(connection, [row.case_id for row in found])
    return [
        _ReachedCase(row.case_id, row.point_id, row.start_at, row.end_at, row.case_id in acted)
        for row in found
    ]


__all__ = ["LateRescoreResult", "late_reason", "rescore_late_hours"]
