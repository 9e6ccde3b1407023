"""Small inline feeds for the source and DAG tests: a few points, valid rows in the recent past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.reference.points import load_registry

POINTS_CSV = """point_id,name,revenue_type,district,open_hours,timezone
PKR-001,Parkir Alun-alun,parking,Kota,06:00-22:00,Asia/Jakarta
PSR-002,Pasar Induk,market,Kota,05:00-17:00,Asia/Jakarta
HTL-003,Hotel Anggrek,hotel_tax,Utara,00:00-24:00,Asia/Jakarta
"""
POINT_IDS = ("PKR-001", "PSR-002", "HTL-003")
BASE = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def load_points(engine, tmp_path: Path) -> None:
    registry = tmp_path / "points.csv"
    registry.write_text(POINTS_CSV)
    load_registry(engine, registry)


def feed_rows(count: int, *, start: int = 0, prefix: str = "T") -> list[dict]:
    """``count`` valid paid transactions, one a minute, cycling over the points."""
    rows = []
    for i in range(start, start + count):
        rows.append(
            {
                "txn_id": f"{prefix}{i:06d}",
                "point_id": POINT_IDS[i % len(POINT_IDS)],
                "occurred_at": (BASE + timedelta(minutes=i)).isoformat(),
                "amount": 5000 + 1000 * (i % 7),
                "payment_method": ("cash", "qris", "card")[i % 3],
                "status": "paid",
                "operator_id": f"OP{i % 2}",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    import csv
    import gzip

    columns = list(rows[0])
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def stored_txn_ids(engine) -> list[str]:
    from sqlalchemy import select

    from pipeline.store.schema import transactions

    with engine.connect() as connection:
        return sorted(connection.execute(select(transactions.c.txn_id)).scalars())


def sqlite_store(sqlite_url: str):
    """A migrated SQLite store, for tests whose point is not the database backend (the key
    tests of each source run on both backends through the ``engine`` fixture)."""
    from pipeline.store import connect

    engine = connect(sqlite_url)
    yield engine
    engine.dispose()
