"""The minute and hour aggregates ingest keeps, batch after batch, are what a recomputation from
the stored transactions gives: after resends, late rows into hours already aggregated, files that
overlap, changed rows (conflicts), on both databases and on both write paths."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from pipeline.intake import aggregate
from pipeline.intake.aggregate import aggregate_range
from pipeline.intake.ingest import ingest_file
from pipeline.store import bulk
from pipeline.store.schema import hour_aggregates, minute_aggregates
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id,payer_ref\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def line(i: int, *, amount: int | None = None) -> str:
    """Row ``i``: four points, spread over ten hours of 1 March (several rows in some minutes)."""
    seconds = i * 37 % 36_000
    hour, minute, second = seconds // 3600, seconds // 60 % 60, seconds % 60
    status = ("paid", "paid", "void", "paid", "refund")[i % 5]
    return (
        f"T{i:05d},P{i % 4},2026-03-01T{hour:02d}:{minute:02d}:{second:02d}+07:00,"
        f"{amount if amount is not None else 1000 + i % 700},{'cash' if i % 3 else 'qris'},"
        f"{status},op{i % 6},\n"
    )


def write(tmp_path, name: str, lines: list[str]):
    path = tmp_path / name
    path.write_text(HEADER + "".join(lines))
    return path


def aggregates(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in (minute_aggregates, hour_aggregates)
        }


@pytest.mark.parametrize(
    ("arrow", "dirty_per_read"),
    [(True, 50_000), (False, 50_000), (True, 7)],
    ids=["arrow", "classic", "dirty-hours-in-rounds"],
)
def test_aggregates_after_resends_late_rows_and_overlaps_equal_a_recomputation(
    engine, tmp_path, monkeypatch, arrow, dirty_per_read
):
    if not arrow:
        monkeypatch.setattr(bulk, "ARROW_WRITES", False)
    # Recomputing the dirty point-hours a few at a time gives the same aggregates.
    monkeypatch.setattr(aggregate, "DIRTY_HOURS_PER_READ", dirty_per_read)
    register(engine, "P0", "P1", "P2", "P3")
    first = [line(i) for i in range(0, 1600) if i % 4 != 1]  # every 4th row held back
    late = [line(i) for i in range(1, 1600, 4)]  # the held-back rows: hours already aggregated
    batches = [
        ("first.csv", first),
        ("resend.csv", first),  # all duplicates
        # late rows with a few resent rows among them, and one changed row (a conflict)
        ("late.csv", late[:200] + first[:30] + [line(0, amount=777)]),
        # overlaps the late file and adds new rows after the first file's hours
        ("overlap.csv", late[150:] + [line(i) for i in range(1600, 1800)]),
    ]
    results = [
        ingest_file(engine, write(tmp_path, name, lines), chunk_rows=300, now=NOW)
        for name, lines in batches
    ]
    assert [(r.accepted, r.duplicates) for r in results] == [
        (1200, 0),
        (0, 1200),
        (200, 30),  # the changed row is quarantined as a conflict
        (400, 50),
    ]
    assert results[2].quarantined == 1
    stored = aggregates(engine)
    hours = stored["hour_aggregates"]
    assert sum(h[1] for h in hours) == sum(1 for i in range(1800) if i % 5 in (0, 1, 3))  # paid

    aggregate_range(engine, datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert aggregates(engine) == stored
