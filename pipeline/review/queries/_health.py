"""Pipeline health for ops: last good batch per source, failed and quarantining batches,
recorded failures, watermarks, and one batch's quarantined rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, func, or_, select

from pipeline.core.errors import NotFoundError
from pipeline.review.queries._region import PAGE_SIZE
from pipeline.store.schema import (
    MAX_ROW_ID,
    ingest_batches,
    pipeline_failures,
    quarantine,
    source_watermarks,
)

# A batch still "running" after this was left by a killed ingest (the pull task's execution
# timeout is 15 minutes): listed with the failed ones so ops see it.
STALE_RUNNING = timedelta(hours=1)


def pipeline_health(engine: Engine, *, limit: int = 50, now: datetime | None = None) -> dict:
    """Last good batch per source, failed (or stale running) batches, batches with quarantined
    rows, failures."""
    from pipeline.intake.ingest import recover_abandoned_batches

    # Looking is enough to settle batches a killed ingest left "running" (their process is
    # gone): they are marked failed and listed below like any other failure.
    recover_abandoned_batches(engine, now=now)
    stale_before = (now or datetime.now(UTC)) - STALE_RUNNING
    b = ingest_batches
    with engine.connect() as connection:
        last_ok = {
            r.source: r
            for r in connection.execute(
                select(
                    b.c.source,
                    func.max(b.c.finished_at).label("last_ok_at"),
                    func.count().label("ok_batches"),
                )
                .where(b.c.status == "ok")
                .group_by(b.c.source)
            ).all()
        }
        latest_started = (
            select(b.c.source, func.max(b.c.batch_id).label("batch_id"))
            .group_by(b.c.source)
            .subquery()
        )
        latest = connection.execute(
            select(b).join(latest_started, latest_started.c.batch_id == b.c.batch_id)
        ).all()
        sources = []
        for row in sorted(latest, key=lambda r: r.source):
            ok = last_ok.get(row.source)
            sources.append(
                {
                    "source": row.source,
                    "last_ok_at": ok.last_ok_at if ok else None,
                    "ok_batches": ok.ok_batches if ok else 0,
                    "latest": row,
                }
            )
        failed = connection.execute(
            select(b)
            .where(
                or_(
                    b.c.status.in_(("failed", "rejected", "partial")),
                    and_(b.c.status == "running", b.c.started_at < stale_before),
                )
            )
            .order_by(b.c.batch_id.desc())
            .limit(limit)
        ).all()
        quarantined = connection.execute(
            select(b).where(b.c.quarantined > 0).order_by(b.c.batch_id.desc()).limit(limit)
        ).all()
        failures = connection.execute(
            select(pipeline_failures).order_by(pipeline_failures.c.at.desc()).limit(limit)
        ).all()
        watermarks = connection.execute(
            select(source_watermarks).order_by(source_watermarks.c.source)
        ).all()
    return {
        "sources": sources,
        "failed": failed,
        "quarantined": quarantined,
        "failures": failures,
        "watermarks": watermarks,
    }


def batch_quarantine(engine: Engine, batch_id: int, page: int = 1, *, page_size: int = PAGE_SIZE):
    """One batch and one page of its quarantined rows (reasons and the raw row as received)."""
    if not 0 < batch_id <= MAX_ROW_ID:
        raise NotFoundError(f"batch {batch_id} does not exist")
    with engine.connect() as connection:
        batch = connection.execute(
            select(ingest_batches).where(ingest_batches.c.batch_id == batch_id)
        ).first()
        if batch is None:
            raise NotFoundError(f"batch {batch_id} does not exist")
        total = connection.execute(
            select(func.count()).where(quarantine.c.batch_id == batch_id)
        ).scalar()
        rows = connection.execute(
            select(quarantine)
            .where(quarantine.c.batch_id == batch_id)
            .order_by(quarantine.c.line_no, quarantine.c.quarantine_id)
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    return batch, rows, total, max(1, -(-total // page_size))
