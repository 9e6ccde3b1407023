"""The regency's clock: its zone, local midnights, and how many rows a page shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pipeline.core.errors import UnusableInputError
from pipeline.core.times import DEFAULT_TIMEZONE

PAGE_SIZE = 50
MAX_PAGE = 1_000_000  # 50 million rows: past any real list, inside every database's OFFSET
WEEK = timedelta(days=7)


def page_number(value: str | None) -> int:
    """The ``page`` query parameter: absent means 1; anything but 1..MAX_PAGE is refused."""
    text = (value or "").strip() or "1"
    if not text.isdigit() or len(text) > 7 or not 1 <= int(text) <= MAX_PAGE:
        raise UnusableInputError(f"page={text[:40]!r} is not a page number (1 to {MAX_PAGE})")
    return int(text)


def region_tz() -> ZoneInfo:
    """The regency's own time zone: dashboards and date filters speak in it."""
    return ZoneInfo(DEFAULT_TIMEZONE)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
