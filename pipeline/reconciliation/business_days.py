"""When money is due and when it is late: business days (weekends, Indonesian public holidays,
closed bank days) and the calendar months tax periods are."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pipeline.core.errors import UnusableInputError
from pipeline.reconciliation.config import ReconConfig
from pipeline.reference.calendar import public_holidays


def is_business_day(day: date, config: ReconConfig) -> bool:
    """Banks are open: not a weekend, a configured closed day or (if counted) a public holiday."""
    if day.weekday() >= 5 or day.isoformat() in config.closed_days:
        return False
    years = (day.year - 1, day.year, day.year + 1)
    return not (config.public_holidays and day in public_holidays(years))


def roll_forward(day: date, config: ReconConfig) -> date:
    """A due date on a weekend or holiday moves to the next business day, as banks do."""
    while not is_business_day(day, config):
        day += timedelta(days=1)
    return day


def business_days_late(due: date, landed: date, config: ReconConfig) -> int:
    """Business days after the (rolled) due date on which the money landed; 0 if on time."""
    due = roll_forward(due, config)
    late, day = 0, due
    while day < landed:
        day += timedelta(days=1)
        if is_business_day(day, config):
            late += 1
    return late


def last_allowed_day(due: date, config: ReconConfig) -> date:
    """The last day money due on ``due`` may land without being late."""
    day, allowed = roll_forward(due, config), config.allowed_days_late
    while allowed:
        day += timedelta(days=1)
        if is_business_day(day, config):
            allowed -= 1
    return day


def tax_due_date(period_end: date, config: ReconConfig) -> date:
    """Tax for a period ending ``period_end`` is due on ``tax_due_day`` of the following month."""
    following = (period_end.replace(day=1) + timedelta(days=32)).replace(day=1)
    return following.replace(day=min(config.tax_due_day, 28))


def month_bounds(period: str) -> tuple[date, date]:
    """``2026-03`` -> (2026-03-01, 2026-04-01)."""
    try:
        start = datetime.strptime(period, "%Y-%m").date()
    except ValueError:
        raise UnusableInputError(f"period {period!r} is not a month written YYYY-MM") from None
    return start, (start + timedelta(days=32)).replace(day=1)


def calendar_months(start: date, end: date) -> list[tuple[date, date]]:
    """(first day, last day) of every calendar month touching [start, end)."""
    months, current = [], start.replace(day=1)
    while current < end:
        following = (current + timedelta(days=32)).replace(day=1)
        months.append((current, following - timedelta(days=1)))
        current = following
    return months


def month_end(month_start: date) -> date:
    """The last day of the calendar month that starts on ``month_start``."""
    return calendar_months(month_start, month_start + timedelta(days=1))[0][1]
