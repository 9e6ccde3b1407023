"""Weekly trends for leaders: revenue per local week, per district and type against their usual,
the points with the biggest drops, and a district's or a type's points (the drill-down).

'Usual' here is the mean of the 4 complete weeks before the last complete week (fewer where the
data begins later, never under 2; a week the data begins in the middle of is not one). The detector's
usual is per point and hour of the week, learnt with noise bands for flagging single hours; it
has no weekly figure to reuse, and a leader's question ("is this week down?") is answered
plainly by the weeks before it. The page says so.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from pipeline.review.queries._cashless import flagged_by_point, leaders_weeks
from pipeline.review.queries._region import WEEK, local_midnight, region_tz
from pipeline.review.queries._revenue import PointWeeks, data_span, weekly_by_point

USUAL_WEEKS = 4
MIN_USUAL_WEEKS = 2
SHOWN_WEEKS = 8  # complete weeks in the trend, and the running one
SHOWN_DROPS = 20


def _change(now_value: int, usual: float | None) -> float | None:
    """Relative change against the usual (a fraction), None without a usual."""
    return (now_value - usual) / usual if usual else None


def _line(name: str, revenue: list[int], last: int, first_full: int, **extra) -> dict:
    """Revenue of the last complete week (index ``last``) against the mean of the up to
    ``USUAL_WEEKS`` weeks before it that the data covers whole (from index ``first_full``)."""
    before = revenue[max(last - USUAL_WEEKS, first_full) : max(last, 0)]
    usual = sum(before) / len(before) if len(before) >= MIN_USUAL_WEEKS else None
    return {
        "name": name,
        "revenue_rp": revenue,
        "last_rp": revenue[last] if last >= 0 else 0,
        "usual_rp": round(usual) if usual is not None else None,
        "usual_weeks": len(before) if usual is not None else 0,
        "change": _change(revenue[last], usual) if last >= 0 else None,
        **extra,
    }


def _sum(points: list[PointWeeks], size: int) -> list[int]:
    totals = [0] * size
    for p in points:
        for i, value in enumerate(p.revenue_rp):
            totals[i] += value
    return totals


def trends(
    engine: Engine,
    *,
    now: datetime,
    district: str | None = None,
    revenue_type: str | None = None,
) -> dict:
    """Revenue per local week (the running one marked) for the regency or one district or type,
    per district and type against their usual, and the points' changes, biggest drops first."""
    tz = region_tz()
    week_list, cutoff, note = leaders_weeks(engine, now, SHOWN_WEEKS + USUAL_WEEKS + 1)
    with engine.connect() as connection:
        every = weekly_by_point(connection, [w["start"] for w in week_list], tz, cutoff)
        first, _ = data_span(connection)
        first_day = first.astimezone(tz).date() if first is not None else week_list[-1]["start"]
        # Weeks before the data begins, or the week it begins in, are not a usual week.
        first_full = next(
            (i for i, w in enumerate(week_list) if w["start"] >= first_day), len(week_list)
        )
        last = len(week_list) - (2 if week_list[-1]["partial"] else 1)  # the last complete week
        last_week = week_list[last] if last >= 0 else None
        # Case counts of the week the changes are read for: what was flagged while it fell.
        flagged = (
            flagged_by_point(
                connection,
                local_midnight(last_week["start"], tz),
                local_midnight(last_week["start"] + WEEK, tz),
            )
            if last_week is not None
            else {}
        )
    chosen = [
        p
        for p in every
        if (district is None or p.district == district)
        and (revenue_type is None or p.revenue_type == revenue_type)
    ]
    size = len(week_list)
    groups: dict[str, dict[str, list[PointWeeks]]] = {"district": {}, "type": {}}
    for p in chosen:
        groups["district"].setdefault(p.district, []).append(p)
        groups["type"].setdefault(p.revenue_type, []).append(p)
    points = [
        _line(
            p.name,
            p.revenue_rp,
            last,
            first_full,
            point_id=p.point_id,
            district=p.district,
            revenue_type=p.revenue_type,
            cases=flagged.get(p.point_id, {}).get("cases", 0),
        )
        for p in chosen
    ]
    by_change = sorted(points, key=lambda r: (r["change"] is None, r["change"] or 0, r["name"]))
    total = _sum(chosen, size)
    # The trend starts at the first week with data (at most SHOWN_WEEKS before the running one).
    start = max(size - SHOWN_WEEKS - 1, next((i for i, v in enumerate(total) if v), size - 1))
    shown = week_list[start:]
    return {
        "weeks": shown,
        "week_values": total[-len(shown) :],
        "last_week": last_week,
        "as_of": cutoff,
        "note": note,
        "district": district,
        "revenue_type": revenue_type,
        "total": _line("total", total, last, first_full, cases=sum(p["cases"] for p in points)),
        "by_district": _group_rows(groups["district"], size, last, first_full),
        "by_type": _group_rows(groups["type"], size, last, first_full),
        "drops": [p for p in by_change if p["change"] is not None and p["change"] < 0][
            :SHOWN_DROPS
        ],
        "points": by_change,
        "usual_weeks": USUAL_WEEKS,
    }


def _group_rows(
    groups: dict[str, list[PointWeeks]], size: int, last: int, first_full: int
) -> list[dict]:
    rows = [
        _line(name, _sum(members, size), last, first_full, points=len(members))
        for name, members in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r["last_rp"], r["name"]))
