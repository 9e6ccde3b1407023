"""The scheduler as ops see it: the last runs of each eincome DAG, read from Airflow's metadata
database (``EINCOME_AIRFLOW_DB_URL``, best a read-only user), for the ops page beside the
pipeline's own failure records.

Read straight from the ``dag_run`` table rather than the REST API: the review app then needs
no Airflow credentials, and a database URL is what the deployment already has. Airflow 3's
``dag_run`` columns used here (dag_id, run_id, run_type, state, logical_date, data_interval_*,
run_after, start_date, end_date) are stable across its 3.x migrations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.times import to_utc

RUNS_PER_DAG = 5


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    run_type: str  # scheduled, manual, backfill, asset_triggered
    state: str  # queued, running, success, failed
    interval_start: datetime | None  # None for a manual run without a logical date
    interval_end: datetime | None
    run_after: datetime | None
    started: datetime | None
    ended: datetime | None


@dataclass(frozen=True)
class SchedulerView:
    configured: bool
    runs: dict[str, list[DagRun]]  # dag_id -> newest first
    error: str | None = None  # why the metadata database could not be read


@functools.cache
def _engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=0)


def recent_dag_runs(
    url: str, *, per_dag: int = RUNS_PER_DAG, prefix: str = "eincome"
) -> SchedulerView:
    """The newest ``per_dag`` runs of every DAG whose id starts with ``prefix``. An unreadable
    metadata database is reported in ``error`` (the ops page says so), not raised: the page
    is where ops look when things are broken."""
    if not url:
        return SchedulerView(configured=False, runs={})
    query = text(
        "SELECT dag_id, run_id, run_type, state, data_interval_start, data_interval_end,"
        " run_after, start_date, end_date FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY dag_id ORDER BY run_after DESC, id DESC) AS n"
        "  FROM dag_run WHERE dag_id LIKE :prefix"
        ") AS ranked WHERE n <= :per_dag ORDER BY dag_id, run_after DESC, id DESC"
    )
    try:
        with _engine(url).connect() as connection:
            rows = connection.execute(query, {"prefix": f"{prefix}%", "per_dag": per_dag}).all()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return SchedulerView(
            configured=True, runs={}, error=f"cannot read the Airflow metadata database: {reason}"
        )
    runs: dict[str, list[DagRun]] = {}
    for r in rows:
        runs.setdefault(r.dag_id, []).append(
            DagRun(
                dag_id=r.dag_id,
                run_id=r.run_id,
                run_type=str(r.run_type),
                state=str(r.state),
                interval_start=_aware(r.data_interval_start),
                interval_end=_aware(r.data_interval_end),
                run_after=_aware(r.run_after),
                started=_aware(r.start_date),
                ended=_aware(r.end_date),
            )
        )
    return SchedulerView(configured=True, runs=runs)


def _aware(value) -> datetime | None:
    """Airflow stores UTC; SQLite hands the text back naive (or as a string)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return to_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
