"""What leaders read beside the live dashboard: revenue against the year's PAD targets
(realisasi vs target).

Revenue is ``_revenue.paid_revenue`` (the recorded paid amount, the dashboard's figure). Every
period is counted in the regency's own calendar: the year and the month run from their local
midnights up to the as-of moment.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine

from pipeline.reference.targets import WHOLE_REGENCY, targets_of_year
from pipeline.review.queries._region import local_midnight, region_tz
from pipeline.review.queries._revenue import UNKNOWN_POINT as UNKNOWN
from pipeline.review.queries._revenue import data_span, paid_revenue

DAY = timedelta(days=1)


def as_of_moment(engine: Engine, now: datetime, year: int | None = None) -> tuple[datetime, str]:
    """Up to when the leaders' pages count, and a note when that is not now.

    Now, unless no revenue has arrived today (a demo on historical data, a quiet night): then
    the end of the latest local day with data, so the pages are not empty. A past ``year`` is
    counted whole, to its last local midnight."""
    tz = region_tz()
    today = now.astimezone(tz).date()
    if year is not None and year < today.year:
        return local_midnight(date(year + 1, 1, 1), tz), ""
    with engine.connect() as connection:
        _, latest = data_span(connection)
    if latest is not None and latest < local_midnight(today, tz):
        day = latest.astimezone(tz).date()
        if year is None or year == day.year:
            return local_midnight(day + DAY, tz), "latest"
    return now, ""


def realisation(engine: Engine, *, now: datetime, year: int | None = None) -> dict:
    """Year-to-date and month-to-date revenue per revenue type (and district where the targets
    are per district) against the year's targets, with the pace still needed.

    ``pace_rp``: what is still missing of the target divided by the days left in the year after
    the as-of day, rounded up to whole rupiah (None once the year is over or the target is met).
    The month's share of a yearly target is the target spread evenly over the year's days.
    """
    tz = region_tz()
    cutoff, note = as_of_moment(engine, now, year)
    as_of_day = (cutoff - timedelta(microseconds=1)).astimezone(tz).date()
    year = as_of_day.year if year is None else year
    if as_of_day.year != year:  # a year still to come: nothing counted yet
        as_of_day = date(year, 1, 1) - DAY
    year_start = local_midnight(date(year, 1, 1), tz)
    month_first = as_of_day.replace(day=1) if as_of_day.year == year else date(year, 1, 1)
    month_start = local_midnight(month_first, tz)
    days_in_year = 366 if calendar.isleap(year) else 365
    days_left = max((date(year, 12, 31) - as_of_day).days, 0)
    days_done = days_in_year - days_left
    days_in_month = calendar.monthrange(year, month_first.month)[1]
    end = min(cutoff, local_midnight(date(year + 1, 1, 1), tz))
    by = ("revenue_type", "district")
    with engine.connect() as connection:
        ytd_rows = paid_revenue(connection, year_start, end, by) if end > year_start else []
        mtd_rows = paid_revenue(connection, month_start, end, by) if end > month_start else []
        targets = targets_of_year(connection, year)
        first, _ = data_span(connection)
    ytd: dict[tuple[str, str], int] = defaultdict(int)
    mtd: dict[tuple[str, str], int] = defaultdict(int)
    for rows, into in ((ytd_rows, ytd), (mtd_rows, mtd)):
        for r in rows:
            into[(r.revenue_type or UNKNOWN, r.district or UNKNOWN)] += int(r.revenue_rp or 0)

    period = _Period(days_in_year, days_left, days_in_month)
    rows = _type_rows(targets, ytd, mtd, period)
    with_target = [r for r in rows if r["target_rp"] is not None]
    total = period.line(
        "total",
        sum(r["target_rp"] for r in with_target) if with_target else None,
        sum(r["ytd_rp"] for r in with_target),
        sum(r["mtd_rp"] for r in with_target),
    )
    data_from = first.astimezone(tz).date() if first is not None else None
    return {
        "year": year,
        "as_of_day": as_of_day,
        "as_of": cutoff,
        "note": note,
        "month": month_first.isoformat()[:7],
        "days_in_year": days_in_year,
        "days_done": days_done,
        "days_left": days_left,
        "expected_share": days_done / days_in_year,
        "data_from": data_from if data_from is not None and data_from > date(year, 1, 1) else None,
        "rows": rows,
        "total": total,
        "untargeted_ytd_rp": sum(r["ytd_rp"] for r in rows if r["target_rp"] is None),
        "has_targets": bool(targets),
    }


@dataclass(frozen=True)
class _Period:
    days_in_year: int
    days_left: int  # after the as-of day
    days_in_month: int

    def line(self, name: str, target_rp: int | None, ytd_rp: int, mtd_rp: int, **extra) -> dict:
        """One row of the table: revenue so far against the target, and the pace still needed."""
        month_target = (
            round(target_rp * self.days_in_month / self.days_in_year)
            if target_rp is not None
            else None
        )
        missing = max(target_rp - ytd_rp, 0) if target_rp is not None else None
        return {
            "name": name,
            "target_rp": target_rp,
            "ytd_rp": ytd_rp,
            "mtd_rp": mtd_rp,
            "realised": ytd_rp / target_rp if target_rp else None,
            "month_target_rp": month_target,
            "month_realised": mtd_rp / month_target if month_target else None,
            "missing_rp": missing,
            # rounded up: paying this every day left reaches the target, never falls a rupiah short
            "pace_rp": -(-missing // self.days_left) if missing and self.days_left else None,
            **extra,
        }


def _type_rows(targets, ytd: dict, mtd: dict, period: _Period) -> list[dict]:
    """A row per revenue type with revenue or a target; a type whose targets are per district
    carries a row per district too (districts with revenue but no target show '-')."""
    by_type_targets: dict[str, dict[str, int]] = defaultdict(dict)
    for t in targets:
        by_type_targets[t.revenue_type][t.district] = t.target_rp
    rows = []
    for revenue_type in sorted({k[0] for k in ytd} | set(by_type_targets)):
        set_for = by_type_targets.get(revenue_type, {})
        type_ytd = sum(v for (ty, _), v in ytd.items() if ty == revenue_type)
        type_mtd = sum(v for (ty, _), v in mtd.items() if ty == revenue_type)
        districts = []
        if set_for and WHOLE_REGENCY not in set_for:  # targets per district
            names = sorted(set(set_for) | {d for (ty, d) in ytd if ty == revenue_type})
            districts = [
                period.line(
                    d, set_for.get(d), ytd.get((revenue_type, d), 0), mtd.get((revenue_type, d), 0)
                )
                for d in names
            ]
        rows.append(
            period.line(
                revenue_type,
                sum(set_for.values()) if set_for else None,
                type_ytd,
                type_mtd,
                per_district=bool(districts),
                districts=districts,
            )
        )
    return rows
