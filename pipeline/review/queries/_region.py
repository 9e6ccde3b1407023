"""The regency's clock: its zone, local midnights, and how many rows a page shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE, FIRST_DAY, LAST_DAY, parse_day
from pipeline.review.i18n import TranslatableInputError

PAGE_SIZE = 50
MAX_PAGE = 1_000_000  # 50 million rows: past any real list, inside every database's OFFSET
WEEK = timedelta(days=7)


def page_number(value: str | None) -> int:
    """The ``page`` query parameter: absent means 1; anything but 1..MAX_PAGE is refused."""
    text = (value or "").strip() or "1"
    if not text.isdigit() or len(text) > 7 or not 1 <= int(text) <= MAX_PAGE:
        raise TranslatableInputError(
            "page=%(value)r is not a page number (1 to %(max)s)", value=text[:40], max=MAX_PAGE
        )
    return int(text)


def parse_day_param(text: str | None, where: str) -> date | None:
    """``core.times.parse_day`` for a query parameter, refusing in the reader's language."""
    try:
        return parse_day(text, where)
    except UnusableInputError:
        raise TranslatableInputError(
            "%(where)s=%(value)r is not a date from %(first)s to %(last)s (YYYY-MM-DD)",
            where=where,
            value=(text or "")[:40],
            first=FIRST_DAY.isoformat(),
            last=LAST_DAY.isoformat(),
        ) from None


def region_tz() -> ZoneInfo:
    """The regency's own time zone: dashboards and date filters speak in it."""
    return ZoneInfo(DEFAULT_TIMEZONE)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
