"""What the live dashboard watches: a cheap token that changes when data or cases change, and the
cases raised since a given one."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from pipeline.store.schema import cases, ingest_batches


def live_token(engine: Engine) -> tuple:
    """Changes whenever a batch finishes (new sales: the figures move) or a case is raised or
    changed. Two index lookups and a max over the cases table, small next to the figures."""
    with engine.connect() as connection:
        batch = connection.execute(
            select(func.max(ingest_batches.c.batch_id)).where(
                ingest_batches.c.status.in_(("ok", "partial"))
            )
        ).scalar()
        case = connection.execute(
            select(func.max(cases.c.case_id), func.max(cases.c.updated_at))
        ).one()
    return (batch or 0, case[0] or 0, str(case[1]))


def latest_case_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.max(cases.c.case_id))).scalar() or 0


def cases_after(engine: Engine, case_id: int, *, limit: int = 10) -> list[dict]:
    """Cases raised after ``case_id``, newest first (what a dashboard has not shown yet)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                cases.c.case_id,
                cases.c.point_id,
                cases.c.kind,
                cases.c.severity,
                cases.c.shortfall_rp,
                cases.c.created_at,
            )
            .where(cases.c.case_id > case_id)
            .order_by(cases.c.case_id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "case_id": r.case_id,
            "point_id": r.point_id,
            "kind": r.kind,
            "severity": r.severity,
            "shortfall_rp": r.shortfall_rp,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]
