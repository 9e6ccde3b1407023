"""Cashless progress, the seed's "fewer person-to-person cash contacts": the non-cash share of
revenue per week for the regency, per district, per revenue type and per point, and the points
that still take most of their revenue in cash, those with the most flagged leakage first (where
a QRIS rollout would pay most).

Non-cash is every payment method but ``cash`` in the feed contract
(``expectations/transactions.json``: qris, card, transfer, ewallet); the aggregates keep the cash
part of each hour's revenue (``cash_amount``), so non-cash share = 1 - cash / revenue.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, select

from pipeline.core.leakage_kinds import shortfall_measure
from pipeline.review.queries._leaders import as_of_moment
from pipeline.review.queries._region import local_midnight, region_tz
from pipeline.review.queries._revenue import PointWeeks, week_starts, weekly_by_point
from pipeline.store.schema import cases

DEFAULT_WEEKS = 8
CASH_HEAVY = 0.5  # "most of their revenue in cash": more than half of it
SHOWN_POINTS = 30
# Cases that still say something about leakage: not disproved by a person or by late data.
SETTLED_AS_NOTHING = ("false_alarm", "cleared")


def noncash_share(revenue_rp: int, cash_rp: int) -> float | None:
    """The share of revenue not paid in cash; None without revenue."""
    return (revenue_rp - cash_rp) / revenue_rp if revenue_rp else None


def leaders_weeks(engine: Engine, now: datetime, weeks: int) -> tuple[list[dict], datetime, str]:
    """The local weeks the weekly leader pages show (the last one may still be running), the
    moment they are counted to, and ``as_of_moment``'s note."""
    tz = region_tz()
    cutoff, note = as_of_moment(engine, now)
    last_day = (cutoff - timedelta(microseconds=1)).astimezone(tz).date()
    out = []
    for monday in week_starts(last_day, weeks):
        end = local_midnight(monday + timedelta(weeks=1), tz)
        out.append({"start": monday, "end": monday + timedelta(days=6), "partial": cutoff < end})
    return out, cutoff, note


def flagged_by_point(connection: Connection, begin: datetime, end: datetime) -> dict[str, dict]:
    """Per point: the cases overlapping [begin, end) that are not settled as nothing, and the
    detector's estimated lost sales among them (one measure, ``sales_not_recorded``; the
    reconciliation's tax and deposit gaps measure other money and are only counted)."""
    rows = connection.execute(
        select(cases.c.point_id, cases.c.origin, cases.c.kind, cases.c.shortfall_rp)
        .where(cases.c.start_at < end)
        .where(cases.c.end_at > begin)
        .where(cases.c.status.not_in(SETTLED_AS_NOTHING))
    ).all()
    flagged: dict[str, dict] = defaultdict(lambda: {"cases": 0, "flagged_rp": 0})
    for point_id, origin, kind, shortfall in rows:
        cell = flagged[point_id]
        cell["cases"] += 1
        if shortfall_measure(origin, kind) == "sales_not_recorded":
            cell["flagged_rp"] += int(shortfall or 0)
    return dict(flagged)


def cashless(engine: Engine, *, now: datetime, weeks: int = DEFAULT_WEEKS) -> dict:
    """Non-cash share per week (regency, district, type), per point over the weeks, and the
    cash-heavy points ranked by flagged leakage."""
    tz = region_tz()
    week_list, cutoff, note = leaders_weeks(engine, now, weeks)
    with engine.connect() as connection:
        point_weeks = weekly_by_point(connection, [w["start"] for w in week_list], tz, cutoff)
        # Weeks before the data begins say nothing: the page starts at the first week with any.
        skip = next(
            (i for i in range(len(week_list)) if any(p.revenue_rp[i] for p in point_weeks)),
            len(week_list) - 1,
        )
        week_list = week_list[skip:]
        for p in point_weeks:
            p.revenue_rp, p.cash_rp = p.revenue_rp[skip:], p.cash_rp[skip:]
        begin = local_midnight(week_list[0]["start"], tz)
        flagged = flagged_by_point(connection, begin, cutoff)
    regency = _group(point_weeks, lambda p: "regency")["regency"] if point_weeks else None
    points = [_point_row(p, flagged.get(p.point_id)) for p in point_weeks]
    cash_heavy = sorted(
        (p for p in points if p["cash_share"] is not None and p["cash_share"] > CASH_HEAVY),
        key=lambda p: (-p["flagged_rp"], -p["cases"], -p["cash_rp"], p["point_id"]),
    )
    return {
        "weeks": week_list,
        "as_of": cutoff,
        "note": note,
        "regency": regency,
        "by_district": _rows(_group(point_weeks, lambda p: p.district)),
        "by_type": _rows(_group(point_weeks, lambda p: p.revenue_type)),
        # A regency has thousands of points: the page lists the least cashless, says how many.
        "points": sorted(points, key=lambda p: (p["noncash_share"] or 0, p["point_id"]))[
            :SHOWN_POINTS
        ],
        "points_count": len(points),
        "cash_heavy": cash_heavy[:SHOWN_POINTS],
        "cash_heavy_count": len(cash_heavy),
        "cash_heavy_threshold": CASH_HEAVY,
    }


def _group(point_weeks: list[PointWeeks], key) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    for p in point_weeks:
        cell = groups.setdefault(
            key(p), {"revenue_rp": [0] * len(p.revenue_rp), "cash_rp": [0] * len(p.cash_rp)}
        )
        for i, (revenue, cash) in enumerate(zip(p.revenue_rp, p.cash_rp, strict=True)):
            cell["revenue_rp"][i] += revenue
            cell["cash_rp"][i] += cash
    for cell in groups.values():
        cell["shares"] = [
            noncash_share(r, c) for r, c in zip(cell["revenue_rp"], cell["cash_rp"], strict=True)
        ]
        cell["total_rp"] = sum(cell["revenue_rp"])
        cell["share"] = noncash_share(cell["total_rp"], sum(cell["cash_rp"]))
    return groups


def _rows(groups: dict[str, dict]) -> list[dict]:
    """A row per group, most revenue first: the share over the weeks, in the first and the last
    week with revenue, and the change between them in percentage points."""
    rows = []
    for name, cell in groups.items():
        known = [s for s in cell["shares"] if s is not None]
        first, last = (known[0], known[-1]) if known else (None, None)
        change = 100 * (last - first) if known else None
        rows.append({"name": name, **cell, "first": first, "last": last, "change_pts": change})
    return sorted(rows, key=lambda r: (-r["total_rp"], r["name"]))


def _point_row(p: PointWeeks, flagged: dict | None) -> dict:
    revenue, cash = sum(p.revenue_rp), sum(p.cash_rp)
    share = noncash_share(revenue, cash)
    return {
        "point_id": p.point_id,
        "name": p.name,
        "revenue_type": p.revenue_type,
        "district": p.district,
        "revenue_rp": revenue,
        "cash_rp": cash,
        "noncash_share": share,
        "cash_share": 1 - share if share is not None else None,
        "shares": [noncash_share(r, c) for r, c in zip(p.revenue_rp, p.cash_rp, strict=True)],
        "cases": (flagged or {}).get("cases", 0),
        "flagged_rp": (flagged or {}).get("flagged_rp", 0),
    }
