"""Where each pull source stopped (``source_watermarks``): an API cursor, a POS table position."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from pipeline.store.schema import source_watermarks
from pipeline.store.upsert import upsert


def get_watermark(engine: Engine, source: str) -> str | None:
    """The stored cursor of ``source``, or None before its first pull."""
    with engine.connect() as connection:
        return connection.execute(
            select(source_watermarks.c.cursor).where(source_watermarks.c.source == source)
        ).scalar_one_or_none()


def set_watermark(engine: Engine, source: str, cursor: str, *, now: datetime | None = None) -> None:
    """Advance ``source`` to ``cursor``. Callers do this only after the data before it is stored."""
    with engine.begin() as connection:
        upsert(
            connection,
            source_watermarks,
            [{"source": source, "cursor": cursor, "updated_at": now or datetime.now(UTC)}],
        )
