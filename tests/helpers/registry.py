"""Register bare points in a test database (ingest stores rows only for registered points)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.store.schema import points
from pipeline.store.upsert import upsert

REGISTERED_AT = datetime(2026, 3, 2, tzinfo=UTC)


def register(engine, *point_ids: str) -> None:
    """Parking points open 06:00-22:00 local, one per id."""
    rows = [
        {
            "point_id": p,
            "name": p,
            "revenue_type": "parking",
            "district": "Kota",
            "open_hours": "06:00-22:00",
            "timezone": DEFAULT_TIMEZONE,
            "updated_at": REGISTERED_AT,
        }
        for p in point_ids
    ]
    with engine.begin() as connection:
        upsert(connection, points, rows)
