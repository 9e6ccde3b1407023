"""Freshness per point on real SQLite and PostgreSQL: the newest sale per point and per source as
ingest keeps it, and the points silent during their open hours as of a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from pipeline.intake.ingest import ingest_rows
from pipeline.reference.freshness import (
    LOOKBACK,
    point_freshness,
    silent_open_hours,
    silent_points,
)
from pipeline.store import connect
from pipeline.store.schema import feed_freshness, points, transactions
from pipeline.store.upsert import upsert

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def registry(engine, *specs: tuple[str, str, str]) -> None:
    """Points (id, open hours, zone)."""
    with engine.begin() as connection:
        upsert(
            connection,
            points,
            [
                {
                    "point_id": p,
                    "name": f"Titik {p}",
                    "revenue_type": "parking",
                    "district": "Kota",
                    "open_hours": hours,
                    "timezone": zone,
                    "updated_at": NOW,
                }
                for p, hours, zone in specs
            ],
        )


def sale(txn: str, point: str, at: str, status: str = "paid") -> dict:
    return {"txn_id": txn, "point_id": point, "occurred_at": at, "amount": "5000",
            "payment_method": "cash", "status": status, "operator_id": "op1"}  # fmt: skip


def by_id(found):
    return {p.point_id: p for p in found}


def test_newest_sale_per_point_and_source_is_data_time_and_never_moves_back(engine):
    registry(engine, ("A", "06:00-22:00", "Asia/Jakarta"), ("B", "00:00-24:00", "Asia/Makassar"),
             ("C", "08:00-16:00", "Asia/Jakarta"))  # fmt: skip
    first = ingest_rows(
        engine,
        [sale("a1", "A", "2026-03-03T10:15:00+07:00"), sale("a2", "A", "2026-03-03T11:40:00+07:00"),
         sale("b1", "B", "2026-03-03T08:05:00+08:00", "void")],
        source="landing:kota", source_ref="week.csv", now=NOW,
    )  # fmt: skip
    # Another device of A, by the push API; then a late resend of older landing rows.
    pushed = ingest_rows(
        engine, [sale("p1", "A", "2026-03-03T09:00:00+07:00")], source="push", source_ref="g1",
        now=NOW,
    )  # fmt: skip
    late = ingest_rows(
        engine, [sale("a0", "A", "2026-03-02T20:00:00+07:00")], source="landing:kota",
        source_ref="old.csv", now=NOW,
    )  # fmt: skip
    assert late.accepted == 1
    found = by_id(point_freshness(engine, as_of=NOW))
    a = found["A"]
    assert a.last_txn_at == datetime(2026, 3, 3, 4, 40, tzinfo=UTC)
    assert [(s.source, s.last_txn_at, s.last_batch_id) for s in a.sources] == [
        ("landing:kota", datetime(2026, 3, 3, 4, 40, tzinfo=UTC), late.batch_id),
        ("push", datetime(2026, 3, 3, 2, 0, tzinfo=UTC), pushed.batch_id),
    ]
    # A void is a sign of life too (the detector's silent hour has no row of any status).
    assert found["B"].last_txn_at == datetime(2026, 3, 3, 0, 5, tzinfo=UTC)
    assert found["B"].sources[0].last_batch_id == first.batch_id
    assert found["C"].last_txn_at is None and found["C"].sources == ()
    # The kept figure is the transactions' own max, per point.
    with engine.connect() as connection:
        stored = dict(
            connection.execute(
                select(transactions.c.point_id, func.max(transactions.c.occurred_at)).group_by(
                    transactions.c.point_id
                )
            ).all()
        )
    assert {p: f.last_txn_at for p, f in found.items() if f.last_txn_at} == {
        p: t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        for p, t in stored.items()
    }


def test_a_rolled_back_batch_leaves_no_freshness(engine):
    registry(engine, ("A", "06:00-22:00", "Asia/Jakarta"))
    bad = [
        sale("x1", "A", "2026-03-03T10:15:00+07:00"),
        sale("x2", "NOPE", "2026-03-03T10:20:00+07:00"),
    ]
    result = ingest_rows(engine, bad, source="api:tapbox", source_ref="page1", now=NOW)
    assert (result.accepted, result.quarantined) == (1, 1)
    only_quarantined = ingest_rows(
        engine, [sale("y1", "NOPE", "2026-03-03T11:20:00+07:00")], source="api:tapbox",
        source_ref="page2", now=NOW,
    )  # fmt: skip
    assert only_quarantined.accepted == 0
    with engine.connect() as connection:
        rows = connection.execute(select(feed_freshness)).all()
    assert [(r.point_id, r.source, r.last_batch_id) for r in rows] == [
        ("A", "api:tapbox", result.batch_id)
    ]


def test_silent_points_count_whole_open_hours_after_the_last_sale(engine):
    # As of 12:00 UTC = 19:00 WIB = 20:00 WITA.
    registry(
        engine,
        ("QUIET", "06:00-22:00", "Asia/Jakarta"),  # last sale 15:10 WIB: 16,17,18 silent -> 3
        ("BUSY", "06:00-22:00", "Asia/Jakarta"),  # last sale 18:30 WIB: none whole since
        ("SHUT", "08:00-16:00", "Asia/Jakarta"),  # last sale 15:50 WIB, closed since 16:00 -> 0
        ("EAST", "00:00-24:00", "Asia/Makassar"),  # last sale 17:59 WITA: 18, 19 -> 2
        ("NIGHT", "18:00-02:00", "Asia/Jakarta"),  # last sale 23:30 WIB yesterday: 00-02 + 18 -> 3
        ("NEVER", "06:00-22:00", "Asia/Jakarta"),  # nothing stored: the week's open hours
    )
    ingest_rows(
        engine,
        [sale("q", "QUIET", "2026-03-03T15:10:00+07:00"), sale("b", "BUSY", "2026-03-03T18:30:00+07:00"),
         sale("s", "SHUT", "2026-03-03T15:50:00+07:00"), sale("e", "EAST", "2026-03-03T17:59:00+08:00"),
         sale("n", "NIGHT", "2026-03-02T23:30:00+07:00")],
        source="landing:kota", source_ref="day.csv", now=NOW,
    )  # fmt: skip
    found = by_id(point_freshness(engine, as_of=NOW))
    assert {p: f.silent_open_hours for p, f in found.items()} == {
        "QUIET": 3, "BUSY": 0, "SHUT": 0, "EAST": 2, "NIGHT": 3, "NEVER": 16 * 7,
    }  # fmt: skip
    assert found["NEVER"].at_least and not found["QUIET"].at_least
    silent = silent_points(engine, as_of=NOW)
    assert [p.point_id for p in silent] == ["NEVER", "NIGHT", "QUIET", "EAST"]
    assert [p.point_id for p in silent_points(engine, as_of=NOW, min_open_hours=3)] == [
        "NEVER", "NIGHT", "QUIET",
    ]  # fmt: skip
    # Half an hour on, 19:00-20:00 WIB is whole too: BUSY is one hour silent, QUIET four.
    later = by_id(point_freshness(engine, as_of=NOW + timedelta(minutes=60)))
    assert (later["BUSY"].silent_open_hours, later["QUIET"].silent_open_hours) == (1, 4)
    # A sale after the moment asked about is no silence (an old hour replayed).
    early = by_id(point_freshness(engine, as_of=datetime(2026, 3, 3, 6, 0, tzinfo=UTC)))
    assert early["BUSY"].silent_open_hours == 0


def test_silence_counting_is_one_pass_for_thousands_of_points():
    import time

    n = 5000
    last = [NOW - timedelta(minutes=37 * i) for i in range(n)]
    zones = ["Asia/Jakarta"] * (n // 2) + ["Asia/Makassar"] * (n - n // 2)
    started = time.perf_counter()
    counts, capped = silent_open_hours(["00:00-24:00"] * n, zones, last, NOW)
    assert time.perf_counter() - started < 2.0
    # Open round the clock: every whole hour after the sale's own hour counts, up to the week.
    hours_since = [
        int((NOW - t.replace(minute=0, second=0)).total_seconds() // 3600) - 1 for t in last
    ]
    week = int(LOOKBACK.total_seconds() // 3600)
    assert counts.tolist() == [min(max(h, 0), week) for h in hours_since]
    assert capped.tolist() == [h >= week for h in hours_since]


def test_migration_fills_freshness_from_stored_transactions(sqlite_url):
    """The table starts from the rows already stored: drop it back to 0012, add rows, upgrade."""
    from alembic import command

    from pipeline.store.db import _alembic_config

    engine = connect(sqlite_url)
    registry(engine, ("A", "06:00-22:00", "Asia/Jakarta"))
    ingest_rows(engine, [sale("a1", "A", "2026-03-03T10:15:00+07:00")], source="file",
                source_ref="f.csv", now=NOW)  # fmt: skip
    with engine.begin() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0012_push")
        command.upgrade(config, "head")
    with engine.connect() as connection:
        rows = connection.execute(select(feed_freshness)).all()
        assert connection.execute(text("select count(*) from feed_freshness")).scalar() == 1
    assert [(r.point_id, r.source, r.last_occurred_at) for r in rows] == [
        ("A", "file", datetime(2026, 3, 3, 3, 15, tzinfo=UTC))
    ]
    engine.dispose()
