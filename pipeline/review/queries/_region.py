"""The regency's clock: its zone, local midnights, and how many rows a page shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pipeline.core.times import DEFAULT_TIMEZONE

PAGE_SIZE = 50
WEEK = timedelta(days=7)


def region_tz() -> ZoneInfo:
    """The regency's own time zone: dashboards and date filters speak in it."""
    return ZoneInfo(DEFAULT_TIMEZONE)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
