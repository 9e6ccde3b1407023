"""Times: timezone-aware always, stored in UTC, shown in the point's local zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# The zone of a point that names none, and of the regency's calendar (WIB, UTC+7, no DST).
DEFAULT_TIMEZONE = "Asia/Jakarta"
HOUR = timedelta(hours=1)


def to_utc(moment: datetime) -> datetime:
    """A plain stdlib UTC datetime from any aware one (including pendulum's subclass that Airflow
    hands to tasks: the pipeline is written and tested against stdlib datetimes)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}; times must be timezone-aware")
    return datetime.fromtimestamp(moment.timestamp(), tz=UTC)


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour that holds ``moment``."""
    return to_utc(moment).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    """The first UTC hour start at or after ``moment``."""
    start = floor_hour(moment)
    return start if start == to_utc(moment) else start + HOUR


def local_midnight(day: date, zone: str | ZoneInfo) -> datetime:
    """The UTC instant a local calendar ``day`` begins in ``zone`` (a name or a ZoneInfo)."""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# Calendar days a person may ask about: wide enough for any revenue record, narrow enough that a
# day's neighbours (a week before, the day after, local midnight in UTC) are dates too.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


def parse_day(text: str | None, where: str) -> date | None:
    """A YYYY-MM-DD day between FIRST_DAY and LAST_DAY (None when empty); ``where`` names the
    parameter in the message of the UnusableInputError raised otherwise."""
    from pipeline.core.errors import UnusableInputError

    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UnusableInputError(f"{where}={text[:40]!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise UnusableInputError(
            f"{where}={text!r} is outside {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
        )
    return day
