"""The one writer of ``rescore_requests``: point-hours rows reached after the hour was scored.

Ingest asks (``request_rescore``) when it stores rows into an hour that scoring has already
passed; the detection stage reads the queue (``pending``) on its next run, re-scores those hours
and clears what it did (``settle``). "Scored" is what scoring leaves behind: a flagged point-hour
(``anomalies``) at that hour or later; an hour after the last flag anywhere is treated as not yet
scored (a quiet stretch with no flag at all leaves no record to tell it by).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, delete, func, select

from pipeline.store.schema import anomalies, rescore_requests
from pipeline.store.upsert import upsert


class RescoreRequest(NamedTuple):
    point_id: str
    hour_start: datetime
    late_rows: int
    first_at: datetime
    requested_at: datetime


def scored_until(connection: Connection) -> datetime | None:
    """The end of the last scored hour as far as records tell (the last flag's hour + 1 h)."""
    last = connection.execute(select(func.max(anomalies.c.hour_start))).scalar_one_or_none()
    return None if last is None else last + timedelta(hours=1)


def request_rescore(
    connection: Connection, requests: Sequence[dict], *, batch_id: int, now: datetime
) -> int:
    """Queue point-hours (dicts of point_id, hour_start, late_rows, first_at) for a re-score;
    an hour already queued adds the new rows to its count. Returns how many were queued."""
    if not requests:
        return 0
    c = rescore_requests.c
    hours = [r["hour_start"] for r in requests]
    queued = {
        (row.point_id, row.hour_start): row
        for row in connection.execute(
            select(c.point_id, c.hour_start, c.late_rows, c.first_at).where(
                c.hour_start >= min(hours), c.hour_start <= max(hours)
            )
        )
    }
    rows = []
    for r in requests:
        before = queued.get((r["point_id"], r["hour_start"]))
        rows.append(
            {
                "point_id": r["point_id"],
                "hour_start": r["hour_start"],
                "late_rows": int(r["late_rows"]) + (before.late_rows if before else 0),
                "first_at": min(r["first_at"], before.first_at) if before else r["first_at"],
                "batch_id": batch_id,
                "requested_at": now,
            }
        )
    upsert(connection, rescore_requests, rows)
    return len(rows)


def pending(connection: Connection, *, until: datetime | None = None) -> list[RescoreRequest]:
    """The queued point-hours (before ``until``, if given), oldest first."""
    c = rescore_requests.c
    query = select(c.point_id, c.hour_start, c.late_rows, c.first_at, c.requested_at)
    if until is not None:
        query = query.where(c.hour_start < until)
    rows = connection.execute(query.order_by(c.hour_start, c.point_id)).all()
    return [RescoreRequest(*row) for row in rows]


def settle(connection: Connection, done: Iterable[RescoreRequest]) -> int:
    """Clear re-scored requests; one that more late rows reached meanwhile stays queued."""
    c = rescore_requests.c
    keys = [{"p": r.point_id, "h": r.hour_start, "at": r.requested_at} for r in done]
    if not keys:
        return 0
    statement = delete(rescore_requests).where(
        c.point_id == bindparam("p"),
        c.hour_start == bindparam("h", type_=c.hour_start.type),
        c.requested_at == bindparam("at", type_=c.requested_at.type),
    )
    return connection.execute(statement, keys).rowcount


__all__ = ["RescoreRequest", "pending", "request_rescore", "scored_until", "settle"]
