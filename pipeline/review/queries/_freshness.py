"""Freshness per point for the ops page and its JSON: ``reference.freshness`` read, filtered and
paged, and said as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from pipeline.reference.freshness import SILENT_OPEN_HOURS, PointFreshness, point_freshness
from pipeline.review.i18n import TranslatableInputError
from pipeline.review.queries._region import PAGE_SIZE

MAX_SILENT_OPEN_HOURS = 168  # the look-back's week of hours: more cannot be told apart


@dataclass(frozen=True)
class FreshnessView:
    as_of: datetime
    min_open_hours: int
    points: list[PointFreshness]  # this page's
    total: int  # points listed across pages
    registered: int
    silent: int
    never: int  # registered points with nothing stored yet
    page: int
    pages: int


def min_open_hours_param(value: str | None) -> int:
    """The ``min_open_hours`` query parameter: absent means the default; 1..168."""
    text = (value or "").strip()
    if not text:
        return SILENT_OPEN_HOURS
    if not text.isdigit() or len(text) > 3 or not 1 <= int(text) <= MAX_SILENT_OPEN_HOURS:
        raise TranslatableInputError(
            "min_open_hours=%(value)r is not a number of hours (1 to %(max)s)",
            value=text[:40],
            max=MAX_SILENT_OPEN_HOURS,
        )
    return int(text)


def freshness_view(
    engine: Engine,
    *,
    as_of: datetime,
    min_open_hours: int = SILENT_OPEN_HOURS,
    only_silent: bool = False,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> FreshnessView:
    """The points (silent ones first, the longest silence first), one page of them."""
    every = point_freshness(engine, as_of=as_of, min_open_hours=min_open_hours)
    listed = sorted(
        (p for p in every if p.silent or not only_silent),
        key=lambda p: (not p.silent, -p.silent_open_hours if p.silent else 0, p.point_id),
    )
    pages = max(1, -(-len(listed) // page_size))
    return FreshnessView(
        as_of=as_of,
        min_open_hours=min_open_hours,
        points=listed[(page - 1) * page_size : page * page_size],
        total=len(listed),
        registered=len(every),
        silent=sum(p.silent for p in every),
        never=sum(p.last_txn_at is None for p in every),
        page=page,
        pages=pages,
    )


def freshness_json(view: FreshnessView) -> dict:
    """The view as JSON: times ISO-8601 UTC, counts as numbers."""

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "as_of": when(view.as_of),
        "min_open_hours": view.min_open_hours,
        "registered": view.registered,
        "silent": view.silent,
        "never": view.never,
        "total": view.total,
        "page": view.page,
        "pages": view.pages,
        "points": [
            {
                "point_id": p.point_id,
                "name": p.name,
                "district": p.district,
                "revenue_type": p.revenue_type,
                "open_hours": p.open_hours,
                "timezone": p.timezone,
                "last_txn_at": when(p.last_txn_at),
                "silent": p.silent,
                "silent_open_hours": p.silent_open_hours,
                "silent_at_least": p.at_least,
                "sources": [
                    {
                        "source": s.source,
                        "last_txn_at": when(s.last_txn_at),
                        "last_batch_id": s.last_batch_id,
                    }
                    for s in p.sources
                ],
            }
            for p in view.points
        ],
    }
