"""The weekly rhythm of detection: when models are retrained and usual levels relearnt.

The retrain DAG fits a model every Monday 02:00 in Jakarta on the eight weeks before; every
score of an hour uses the model and the usual levels of the last such moment before it, learnt
only from data before that moment. A backfill walks the same moments, so a backfilled history
is what the live pipeline would have raised. Plain datetimes only: orchestration (parsed by the
DAG processor every few seconds) imports this module at top level.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE, ceil_hour, floor_hour

RETRAIN_WEEKS = 8  # training window: every hour of the week seen several times
RETRAIN_WEEKDAY, RETRAIN_HOUR = 0, 2  # Monday 02:00, after the weekend's markets
RETRAIN_ZONE = ZoneInfo(DEFAULT_TIMEZONE)
# The first model (and the first scored hour) waits for this much history: fewer weeks give an
# hour of the week too few samples for a usual level.
MIN_HISTORY = timedelta(weeks=4)


def last_moment(at: datetime) -> datetime:
    """The latest retrain moment at or before ``at`` (aware), in UTC."""
    local = at.astimezone(RETRAIN_ZONE)
    moment = local.replace(hour=RETRAIN_HOUR, minute=0, second=0, microsecond=0)
    moment -= timedelta(days=(local.weekday() - RETRAIN_WEEKDAY) % 7)
    if moment > local:
        moment -= timedelta(weeks=1)
    return moment.astimezone(UTC)


def moments(start: datetime, end: datetime) -> list[datetime]:
    """Retrain moments m with start <= m < end, in order."""
    moment = last_moment(start)
    if moment < start:
        moment = _next(moment)
    found = []
    while moment < end:
        found.append(moment)
        moment = _next(moment)
    return found


def weeks_of(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at the retrain moments inside it: the weeks as they are scored, each
    judged by one model and one moment's usual levels."""
    edges = [start, *(m for m in moments(start, end) if m > start), end]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _next(moment: datetime) -> datetime:
    # A week later in Jakarta's wall time (no daylight saving there, but keep it honest).
    local = moment.astimezone(RETRAIN_ZONE) + timedelta(weeks=1)
    return local.replace(hour=RETRAIN_HOUR).astimezone(UTC)


def training_window(
    moment: datetime, first_data: datetime, weeks: int = RETRAIN_WEEKS
) -> tuple[datetime, datetime]:
    """The weeks a model fitted at ``moment`` learns from: ``weeks`` before it, or from the first
    data when there is less history."""
    return max(first_data, moment - timedelta(weeks=weeks)), moment


def first_scored_moment(
    first_data: datetime, end: datetime, min_history: timedelta = MIN_HISTORY
) -> datetime | None:
    """The first retrain moment with at least ``min_history`` of days of data before it, if before
    ``end``. History is counted in whole local days from the day the first data fell on: data
    that begins at the first sale of a morning (06:00) has its four weeks by the Monday 02:00
    four weeks on, and counting from the hour pushed the first scored week out by a whole week
    (the evaluation's first scored week, a third of its events, was never scored)."""
    local = first_data.astimezone(RETRAIN_ZONE)
    first_day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    found = moments(first_day.astimezone(UTC) + min_history, end)
    return found[0] if found else None


def checked_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a detection task widened to whole hours; refused when a bound has no UTC
    offset or the range is empty."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise UnusableInputError(f"{name} {value.isoformat()} has no UTC offset")
    start, end = floor_hour(start), ceil_hour(end)
    if end <= start:
        raise UnusableInputError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    return start, end
