"""The case queue: its filter (checked query parameters), one page of it, the export rows."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import Engine, func, select

from pipeline.casework.audit import STATUS_LABELS
from pipeline.core.errors import UnusableInputError
from pipeline.core.times import parse_day
from pipeline.reference.points import REVENUE_TYPES
from pipeline.review.queries._region import PAGE_SIZE, local_midnight, page_number, region_tz
from pipeline.store.schema import cases, points

SEVERITIES = ("high", "medium", "low")
SORTS = {
    "newest": "newest day, largest shortfall first",
    "shortfall": "largest shortfall first",
    "recent": "most recent first",
}


def _parse_date(value: str, name: str) -> date | None:
    return parse_day(value, f"filter {name}")


def _choice(value: str, allowed, name: str) -> str:
    if value and value not in allowed:
        raise UnusableInputError(f"filter {name}={value!r} is not one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class QueueFilter:
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

        return cls(
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


def _queue_query(flt: QueueFilter):
    tz = region_tz()
    query = select(
        cases,
        points.c.name.label("point_name"),
        points.c.district,
        points.c.revenue_type,
        points.c.timezone,
    ).select_from(cases.outerjoin(points, points.c.point_id == cases.c.point_id))
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
    if flt.date_from:
        query = query.where(cases.c.start_at >= local_midnight(flt.date_from, tz))
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
    total_shortfall_rp: int
    page: int
    pages: int


def case_queue(engine: Engine, flt: QueueFilter, *, page_size: int = PAGE_SIZE) -> QueuePage:
    """One page of the filtered queue, with the count and summed shortfall of every match."""
    base = _queue_query(flt).subquery()
    with engine.connect() as connection:
        total, shortfall = connection.execute(
            select(func.count(), func.coalesce(func.sum(base.c.shortfall_rp), 0))
        ).one()
        rows = connection.execute(
            _ordered(_queue_query(flt), flt.sort, engine.dialect.name)
            .limit(page_size)
            .offset((flt.page - 1) * page_size)
        ).all()
    pages = max(1, -(-total // page_size))
    return QueuePage(rows, total, int(shortfall), flt.page, pages)


def queue_rows_for_export(engine: Engine, flt: QueueFilter, *, limit: int = 100_000) -> list:
    """Every row matching the filter (not paged), capped so one click cannot exhaust memory."""
    with engine.connect() as connection:
        return connection.execute(
            _ordered(_queue_query(flt), flt.sort, engine.dialect.name).limit(limit)
        ).all()


def filter_choices(engine: Engine) -> dict:
    """Values for the queue's filter dropdowns."""
    with engine.connect() as connection:
        districts = connection.execute(
            select(points.c.district).distinct().order_by(points.c.district)
        ).scalars()
        point_rows = connection.execute(
            select(points.c.point_id, points.c.name).order_by(points.c.point_id)
        ).all()
        return {
            "districts": list(districts),
            "points": point_rows,
            "revenue_types": REVENUE_TYPES,
            "severities": SEVERITIES,
            "statuses": STATUS_LABELS,
            "sorts": SORTS,
        }
