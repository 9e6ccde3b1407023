"""The case queue: its filter (checked query parameters), one page of it, the export rows."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import Engine, exists, func, or_, select

from pipeline.casework.audit import DECIDABLE, STATUS_LABELS
from pipeline.core.leakage_kinds import SHORTFALL_MEASURES, shortfall_measure
from pipeline.reference.points import REVENUE_TYPES
from pipeline.review.i18n import TranslatableInputError
from pipeline.review.queries._region import (
    PAGE_SIZE,
    local_midnight,
    page_number,
    parse_day_param,
    region_tz,
)
from pipeline.store.schema import MAX_ROW_ID, case_events, cases, points, transactions

SEVERITIES = ("high", "medium", "low")
DUE_CHOICES = ("overdue",)
MAX_SEARCH = 100  # characters of a search term: past any id, name or receipt number
SORTS = {
    "newest": "newest day, largest shortfall first",
    "shortfall": "largest shortfall first",
    "recent": "most recent first",
}


def _parse_date(value: str, name: str) -> date | None:
    return parse_day_param(value, f"filter {name}")


def _choice(value: str, allowed, name: str) -> str:
    if value and value not in allowed:
        raise TranslatableInputError(
            "filter %(name)s=%(value)r is not one of %(allowed)s",
            name=name,
            value=value,
            allowed=", ".join(allowed),
        )
    return value


@dataclass(frozen=True)
class QueueFilter:
    q: str = ""  # text search: point id or name, taxpayer number, operator, receipt, case number
    assignee: str = ""
    due: str = ""  # "overdue": assigned, undecided cases past their due day
    district: str = ""
    revenue_type: str = ""
    point_id: str = ""
    severity: str = ""
    status: str = "open"  # "" means every status
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "newest"
    page: int = 1

    @classmethod
    def from_params(cls, params) -> QueueFilter:
        """Read and check the queue's query parameters (unknown values are refused, not ignored)."""

        def get(name: str) -> str:
            return (params.get(name) or "").strip()

        q = get("q")
        if len(q) > MAX_SEARCH:
            raise TranslatableInputError(
                "search text is %(n)s characters long; at most %(max)s", n=len(q), max=MAX_SEARCH
            )
        return cls(
            q=q,
            assignee=get("assignee").lower(),
            due=_choice(get("due"), DUE_CHOICES, "due"),
            district=get("district"),
            revenue_type=_choice(get("revenue_type"), REVENUE_TYPES, "revenue_type"),
            point_id=get("point_id"),
            severity=_choice(get("severity"), SEVERITIES, "severity"),
            # Absent means the working queue (open cases); an empty choice means every status.
            status=(
                "open"
                if params.get("status") is None
                else _choice(get("status"), STATUS_LABELS, "status")
            ),
            date_from=_parse_date(get("date_from"), "date_from"),
            date_to=_parse_date(get("date_to"), "date_to"),
            sort=_choice(get("sort"), SORTS, "sort") or "newest",
            page=page_number(get("page")),
        )

    def params(self, **changes) -> dict[str, str]:
        """The filter as query parameters (for links, paging and exports)."""
        current = replace(self, **changes)
        out = {}
        for f in fields(current):
            value = getattr(current, f.name)
            if f.name == "page" and value == 1:
                continue
            out[f.name] = "" if value is None else str(value)
        return out

    def query_string(self, **changes) -> str:
        return urlencode(self.params(**changes))


def local_today() -> date:
    """Today in the regency: the day a due day is compared with."""
    return datetime.now(region_tz()).date()


def _search(term: str):
    """Cases a search term finds: by point id, point name, taxpayer number (NPWPD), operator or
    collector (a part of any), by the receipt number of a transaction inside the case's span
    (the whole number: a receipt is looked up, not browsed), or by the case number."""
    text = term.lower()
    found = [
        func.lower(column).contains(text, autoescape=True)
        for column in (cases.c.point_id, points.c.name, points.c.taxpayer_id, cases.c.operators)
    ]
    # Correlated on the case's point and span, so the lookup is one primary-key seek per case.
    found.append(
        exists().where(
            transactions.c.point_id == cases.c.point_id,
            transactions.c.txn_id == term,
            transactions.c.occurred_at >= cases.c.start_at,
            transactions.c.occurred_at < cases.c.end_at,
        )
    )
    number = term.removeprefix("#")
    if number.isdigit() and 0 < int(number) <= MAX_ROW_ID:
        found.append(cases.c.case_id == int(number))
    return or_(*found)


def _queue_query(flt: QueueFilter):
    tz = region_tz()
    query = select(
        cases,
        points.c.name.label("point_name"),
        points.c.district,
        points.c.revenue_type,
        points.c.timezone,
    ).select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))
    if flt.q:
        query = query.where(_search(flt.q))
    if flt.assignee:
        query = query.where(cases.c.assignee == flt.assignee)
    if flt.due == "overdue":
        query = query.where(cases.c.due_on < local_today(), cases.c.status.in_(DECIDABLE))
    if flt.district:
        query = query.where(points.c.district == flt.district)
    if flt.revenue_type:
        query = query.where(points.c.revenue_type == flt.revenue_type)
    if flt.point_id:
        query = query.where(cases.c.point_id == flt.point_id)
    if flt.severity:
        query = query.where(cases.c.severity == flt.severity)
    if flt.status:
        query = query.where(cases.c.status == flt.status)
    # A case is in the date range when its span overlaps it, not only when it starts in it: a
    # week-long device-off case or a month's reconciliation gap is found from any of its days.
    if flt.date_from:
        query = query.where(cases.c.end_at > local_midnight(flt.date_from, tz))
    if flt.date_to:
        query = query.where(cases.c.start_at < local_midnight(flt.date_to + timedelta(days=1), tz))
    return query


def _local_day(column, dialect: str):
    """The calendar day of ``column`` in the regency's time zone, in SQL."""
    tz = region_tz()
    if dialect == "postgresql":
        return func.date(func.timezone(str(tz), column))
    # SQLite keeps naive UTC text; the region has no daylight saving, so a fixed shift is exact.
    hours = int(datetime.now(tz).utcoffset() / timedelta(hours=1))
    return func.date(column, f"{hours:+d} hours")


def _ordered(query, sort: str, dialect: str):
    if sort == "shortfall":
        return query.order_by(cases.c.shortfall_rp.desc(), cases.c.start_at.desc(), cases.c.case_id)
    if sort == "recent":
        return query.order_by(cases.c.start_at.desc(), cases.c.case_id.desc())
    # newest local day first, then the largest shortfall within the day
    return query.order_by(
        _local_day(cases.c.start_at, dialect).desc(),
        cases.c.shortfall_rp.desc(),
        cases.c.case_id.desc(),
    )


@dataclass
class QueuePage:
    rows: list
    total: int
    # measure -> (cases, rupiah), in SHORTFALL_MEASURES order: amounts of different measures
    # (lost sales, undeclared tax, undeposited tax, cash not handed in) are never added up.
    shortfall_by_measure: dict[str, tuple[int, int]]
    page: int
    pages: int


def shortfall_totals(connection, query) -> dict[str, tuple[int, int]]:
    """(cases, summed shortfall) per ``shortfall_measure`` of the cases ``query`` selects."""
    base = query.subquery()
    rows = connection.execute(
        select(
            base.c.origin,
            base.c.kind,
            base.c.operators.is_not(None),
            func.count(),
            func.coalesce(func.sum(base.c.shortfall_rp), 0),
        ).group_by(base.c.origin, base.c.kind, base.c.operators.is_not(None))
    ).all()
    totals: dict[str, list[int]] = {}
    for origin, kind, has_collector, count, rp in rows:
        measure = shortfall_measure(origin, kind, "collector" if has_collector else None)
        cell = totals.setdefault(measure, [0, 0])
        cell[0] += int(count)
        cell[1] += int(rp)
    return {m: (totals[m][0], totals[m][1]) for m in SHORTFALL_MEASURES if m in totals}


def case_queue(engine: Engine, flt: QueueFilter, *, page_size: int = PAGE_SIZE) -> QueuePage:
    """One page of the filtered queue, with the count of every match and their shortfalls
    summed per measure."""
    with engine.connect() as connection:
        by_measure = shortfall_totals(connection, _queue_query(flt))
        total = sum(count for count, _ in by_measure.values())
        rows = connection.execute(
            _ordered(_queue_query(flt), flt.sort, engine.dialect.name)
            .limit(page_size)
            .offset((flt.page - 1) * page_size)
        ).all()
    pages = max(1, -(-total // page_size))
    return QueuePage(rows, total, by_measure, flt.page, pages)


def queue_rows_for_export(
    engine: Engine, flt: QueueFilter, *, case_ids=None, limit: int = 100_000
) -> list:
    """Every row matching the filter (not paged), capped so one click cannot exhaust memory;
    with ``case_ids``, those cases only (a selection on the queue), whatever the filter."""
    query = _queue_query(QueueFilter(status="") if case_ids is not None else flt)
    if case_ids is not None:
        query = query.where(cases.c.case_id.in_(sorted({int(i) for i in case_ids})))
    with engine.connect() as connection:
        return connection.execute(_ordered(query, flt.sort, engine.dialect.name).limit(limit)).all()


def latest_decisions(engine: Engine, case_ids) -> dict[int, object]:
    """The latest decision event (actor, at, note) of each of ``case_ids`` that has one."""
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        return {}
    latest = (
        select(func.max(case_events.c.event_id).label("event_id"))
        .where(case_events.c.action == "decide")
        .group_by(case_events.c.case_id)
        .subquery()
    )
    out = {}
    with engine.connect() as connection:
        for chunk in range(0, len(ids), 1000):
            rows = connection.execute(
                select(
                    case_events.c.case_id, case_events.c.actor, case_events.c.at, case_events.c.note
                )
                .join(latest, latest.c.event_id == case_events.c.event_id)
                .where(case_events.c.case_id.in_(ids[chunk : chunk + 1000]))
            ).all()
            out.update({r.case_id: r for r in rows})
    return out


def next_case_id(engine: Engine, flt: QueueFilter, case_id: int, *, window: int = 500):
    """The case after ``case_id`` in the queue ``flt`` orders, for "next case": when ``case_id``
    has left the queue (decided, so no longer open) the first case of it; None at the end."""
    with engine.connect() as connection:
        ids = list(
            connection.execute(
                _ordered(_queue_query(flt), flt.sort, engine.dialect.name)
                .with_only_columns(cases.c.case_id)
                .limit(window)
            ).scalars()
        )
    if case_id in ids:
        position = ids.index(case_id)
        return ids[position + 1] if position + 1 < len(ids) else None
    return next((i for i in ids if i != case_id), None)


def point_suggestions(engine: Engine, term: str, *, limit: int = 20) -> list[dict]:
    """Points whose id, name or taxpayer number holds ``term``, for the point filter's
    type-ahead (a registry of thousands does not fit one dropdown)."""
    text = term.strip().lower()[:MAX_SEARCH]
    query = select(points.c.point_id, points.c.name, points.c.district).order_by(points.c.point_id)
    if text:
        query = query.where(
            or_(
                *(
                    func.lower(column).contains(text, autoescape=True)
                    for column in (points.c.point_id, points.c.name, points.c.taxpayer_id)
                )
            )
        )
    with engine.connect() as connection:
        rows = connection.execute(query.limit(limit)).all()
    return [{"point_id": r.point_id, "name": r.name, "district": r.district} for r in rows]


def filter_choices(engine: Engine) -> dict:
    """Values for the queue's filter dropdowns (points are looked up as one types, not listed)."""
    with engine.connect() as connection:
        districts = connection.execute(
            select(points.c.district).distinct().order_by(points.c.district)
        ).scalars()
        return {
            "districts": list(districts),
            "due": DUE_CHOICES,
            "revenue_types": REVENUE_TYPES,
            "severities": SEVERITIES,
            "statuses": STATUS_LABELS,
            "sorts": SORTS,
        }
