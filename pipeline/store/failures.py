"""Pipeline failures where ops will see them: the `pipeline_failures` table.

DAG failure callbacks and the CLI record here; the review app lists the recent ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from pipeline.store.schema import pipeline_failures

# Long tracebacks are cut: the table is for a person to notice and find the log, not the log.
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class Failure:
    failure_id: int
    at: datetime
    where: str
    run_id: str | None
    error: str


def record_failure(
    engine: Engine, where: str, run_id: str | None, error: str, *, at: datetime | None = None
) -> int:
    """Store one failure (``where`` is ``dag.task`` or a command name); returns its id."""
    text = (error or "unknown error").strip()
    if len(text) > MAX_ERROR_CHARS:
        suffix = " ... (truncated)"
        text = text[: MAX_ERROR_CHARS - len(suffix)] + suffix
    with engine.begin() as connection:
        result = connection.execute(
            insert(pipeline_failures).values(
                at=at or datetime.now(UTC), where=where[:200], run_id=run_id, error=text
            )
        )
        return int(result.inserted_primary_key[0])


def recent_failures(engine: Engine, limit: int = 50) -> list[Failure]:
    """The newest failures first."""
    query = (
        select(pipeline_failures)
        .order_by(pipeline_failures.c.at.desc(), pipeline_failures.c.failure_id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return [Failure(**row._mapping) for row in connection.execute(query)]


def failures_since(engine: Engine, since: datetime, *, limit: int = 200) -> list[Failure]:
    """Failures recorded at or after ``since``: the newest ``limit`` of them, oldest first (the
    newest, so that a storm of old ones never hides a new one)."""
    newest = (
        select(pipeline_failures)
        .where(pipeline_failures.c.at >= since)
        .order_by(pipeline_failures.c.at.desc(), pipeline_failures.c.failure_id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        found = [Failure(**row._mapping) for row in connection.execute(newest)]
    return found[::-1]
