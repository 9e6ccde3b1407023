"""Ingest end to end on real SQLite and PostgreSQL: counts, quarantine, dedupe, lineage."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

import pipeline.intake.ingest as ingest_module
from pipeline.cli import app
from pipeline.core.errors import UnusableInputError
from pipeline.intake.ingest import (
    BatchFailedError,
    ingest_file,
    ingest_frame,
    quarantine_reasons,
)
from pipeline.store.schema import hour_aggregates, ingest_batches, quarantine, transactions
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def good_rows(n: int, start: int = 0, point: str = "P1") -> str:
    return "".join(
        f"T{i},{point},2026-03-01T10:{i % 60:02d}:{i % 7:02d}+07:00,"
        f"{1000 + i},cash,paid,op{i % 3}\n"
        for i in range(start, start + n)
    )


def write(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def batch_row(engine, batch_id: int):
    with engine.connect() as connection:
        return connection.execute(
            select(ingest_batches).where(ingest_batches.c.batch_id == batch_id)
        ).one()


def test_thousands_of_bad_rows_are_all_quarantined_and_counts_add_up(engine, tmp_path):
    register(engine, "P1")
    bad = "".join(f"B{i},P1,2026-03-01T10:00:00+07:00,-{i + 1},cash,paid,\n" for i in range(5_000))
    path = write(tmp_path, "week3.csv", good_rows(1_000) + bad)
    result = ingest_file(engine, path, now=NOW, chunk_rows=2_500)
    assert (result.rows_read, result.accepted, result.quarantined, result.duplicates) == (
        6_000,
        1_000,
        5_000,
        0,
    )
    assert count(engine, quarantine) == 5_000 and count(engine, transactions) == 1_000
    stored = batch_row(engine, result.batch_id)
    assert stored.status == "ok" and stored.sha256 and stored.finished_at >= stored.started_at
    assert stored.accepted + stored.quarantined + stored.duplicates == stored.rows_read == 6_000
    rows = quarantine_reasons(engine, result.batch_id)
    assert rows[0]["line_no"] == 1_002 and rows[-1]["line_no"] == 6_001  # line 1: the header
    assert rows[-1]["reasons"] == 'amount "-5000" is negative'
    assert rows[-1]["raw"]["txn_id"] == "B4999" and rows[-1]["kind"] == "invalid"


def test_resent_rows_are_duplicates_and_changed_ones_are_conflicts(engine, tmp_path):
    register(engine, "P1", "P2")
    first = ingest_file(engine, write(tmp_path, "a.csv", good_rows(10)), now=NOW)
    assert first.accepted == 10
    # T5-T9 resent (T7 with another amount), T10-T14 new, T1 at another point is a new sale.
    resent = good_rows(5, start=5).replace(
        "T7,P1,2026-03-01T10:07:00+07:00,1007", "T7,P1,2026-03-01T10:07:00+07:00,9007"
    )
    body = resent + good_rows(5, start=10) + good_rows(1, start=1, point="P2")
    second = ingest_file(engine, write(tmp_path, "b.csv", body), now=NOW)
    assert (second.rows_read, second.accepted, second.quarantined, second.duplicates) == (
        11,
        6,
        1,
        4,
    )
    (conflict,) = quarantine_reasons(engine, second.batch_id)
    assert conflict["kind"] == "conflict" and conflict["line_no"] == 4
    assert "amount 9007 (stored 1007)" in conflict["reasons"]
    with engine.connect() as connection:
        amount = connection.execute(
            select(transactions.c.amount).where(transactions.c.txn_id == "T7")
        ).scalar_one()
    assert amount == 1007  # the stored row is kept, never silently overwritten


def test_same_key_twice_in_one_file(engine, tmp_path):
    register(engine, "P1")
    body = good_rows(3) + good_rows(1, start=0) + good_rows(1, start=1).replace(",cash,", ",qris,")
    result = ingest_file(engine, write(tmp_path, "a.csv", body), now=NOW)
    assert (result.accepted, result.duplicates, result.quarantined) == (3, 1, 1)
    (conflict,) = quarantine_reasons(engine, result.batch_id)
    assert "payment_method qris (stored cash)" in conflict["reasons"]


def test_a_key_repeated_in_a_later_chunk_is_classified_and_earlier_chunks_stay(engine, tmp_path):
    # Chunks 1-2 are new keys (the bulk append); chunk 3 repeats T0 unchanged and T1 changed,
    # so its append fails and is rolled back to its savepoint, and the careful path sorts it.
    register(engine, "P1")
    changed = "T1,P1,2026-03-01T10:01:01+07:00,9999,cash,paid,op1\n"
    body = good_rows(200) + good_rows(1) + changed + good_rows(98, start=200)
    result = ingest_file(engine, write(tmp_path, "a.csv", body), now=NOW, chunk_rows=100)
    assert (result.rows_read, result.accepted, result.quarantined, result.duplicates) == (
        300,
        298,
        1,
        1,
    )
    assert count(engine, transactions) == 298
    (conflict,) = quarantine_reasons(engine, result.batch_id)
    assert conflict["kind"] == "conflict" and conflict["line_no"] == 203
    assert "amount 9999 (stored 1001)" in conflict["reasons"]
    with engine.connect() as connection:
        paid = connection.execute(select(func.sum(hour_aggregates.c.txn_count))).scalar_one()
    assert paid == 298


def test_reingesting_the_same_or_an_overlapping_file_adds_nothing(engine, tmp_path):
    register(engine, "P1")
    path = write(tmp_path, "a.csv", good_rows(100))
    ingest_file(engine, path, now=NOW)
    with engine.connect() as connection:
        hours_before = connection.execute(
            select(hour_aggregates).order_by(hour_aggregates.c.hour_start)
        ).all()
    again = ingest_file(engine, path, now=NOW)
    overlap = ingest_file(engine, write(tmp_path, "b.csv", good_rows(50, start=50)), now=NOW)
    assert (again.accepted, again.duplicates) == (0, 100)
    assert (overlap.accepted, overlap.duplicates) == (0, 50)
    assert count(engine, transactions) == 100
    with engine.connect() as connection:
        assert (
            connection.execute(select(hour_aggregates).order_by(hour_aggregates.c.hour_start)).all()
            == hours_before
        )


@pytest.mark.parametrize(
    "content",
    [b"a,b\n1,2\n", b"\x00\x01\x02binary" * 100, b""],
    ids=["wrong-columns", "binary", "empty"],
)
def test_a_file_that_is_not_a_feed_is_a_rejected_batch(engine, tmp_path, content):
    path = tmp_path / "junk.csv"
    path.write_bytes(content)
    with pytest.raises(UnusableInputError, match="junk.csv") as caught:
        ingest_file(engine, path, now=NOW)
    stored = batch_row(engine, caught.value.batch_id)
    assert stored.status == "rejected" and "junk.csv" in stored.message
    assert count(engine, transactions) == 0


def test_one_latin1_byte_deep_in_a_file_quarantines_that_line_and_stores_the_rest(engine, tmp_path):
    # Was: the whole file rejected ("not UTF-8 text after data line 3000").
    register(engine, "P1")
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + good_rows(3_000)).encode()
        + b"T9999,P1,2026-03-01T10:00:00+07:00,1000,cash,paid,caf\xe9\n"
        + good_rows(2_000, start=3_000).encode()
    )
    result = ingest_file(engine, path, now=NOW, chunk_rows=1_000)
    assert (result.rows_read, result.accepted, result.quarantined) == (5_001, 5_000, 1)
    assert result.lines_read == 5_002 and result.status == "ok"
    (bad,) = quarantine_reasons(engine, result.batch_id)
    assert bad["line_no"] == 3_002 and bad["kind"] == "malformed"
    assert "not UTF-8" in bad["reasons"] and bad["raw"]["line"].endswith("caf\\xe9")
    assert count(engine, transactions) == 5_000


def test_a_crash_mid_batch_leaves_no_half_batch(engine, tmp_path, monkeypatch):
    register(engine, "P1")
    bad = "B1,P1,2026-03-01T10:00:00+07:00,-1,cash,paid,\n"
    path = write(tmp_path, "a.csv", good_rows(300) + bad)
    chunks_done = []
    real = ingest_module._store_chunk

    def crash_on_third_chunk(*args, **kwargs):
        if len(chunks_done) == 2:
            raise OSError("disk full (injected)")
        chunks_done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_store_chunk", crash_on_third_chunk)
    with pytest.raises(BatchFailedError, match="injected"):
        ingest_file(engine, path, now=NOW, chunk_rows=100)
    assert count(engine, transactions) == 0 and count(engine, quarantine) == 0
    assert count(engine, hour_aggregates) == 0
    with engine.connect() as connection:
        (failed,) = connection.execute(select(ingest_batches)).all()
    assert failed.status == "failed" and "injected" in failed.message
    monkeypatch.undo()
    retry = ingest_file(engine, path, now=NOW, chunk_rows=100)
    assert (retry.accepted, retry.quarantined) == (300, 1)


def test_late_rows_reaggregate_the_hours_they_touch(engine, tmp_path):
    register(engine, "P1")
    ingest_file(
        engine,
        write(tmp_path, "a.csv", "T1,P1,2026-03-01T10:15:00+07:00,5000,cash,paid,op1\n"),
        now=NOW,
    )
    late = (
        "T2,P1,2026-03-01T10:59:59+07:00,2000,qris,paid,op2\n"
        "T3,P1,2026-03-01T11:00:00+07:00,1000,cash,paid,op2\n"
    )
    ingest_file(engine, write(tmp_path, "b.csv", late), now=NOW)
    with engine.connect() as connection:
        hours = connection.execute(
            select(
                hour_aggregates.c.hour_start,
                hour_aggregates.c.txn_count,
                hour_aggregates.c.gross_paid,
                hour_aggregates.c.cash_amount,
                hour_aggregates.c.operators,
            ).order_by(hour_aggregates.c.hour_start)
        ).all()
    assert [tuple(h) for h in hours] == [
        (datetime(2026, 3, 1, 3, tzinfo=UTC), 2, 7000, 5000, 2),
        (datetime(2026, 3, 1, 4, tzinfo=UTC), 1, 1000, 1000, 1),
    ]


def test_json_lines_and_frames_ingest_the_same_way(engine, tmp_path):
    register(engine, "P1")
    path = tmp_path / "page.jsonl"
    records = [
        {
            "txn_id": f"J{i}",
            "point_id": "P1",
            "occurred_at": "2026-03-01T03:00:00Z",
            "amount": 100 * i,
            "payment_method": "ewallet",
            "status": "paid",
            "payer_ref": "h1",
        }
        for i in range(3)
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    result = ingest_file(engine, path, now=NOW)
    assert (result.accepted, result.quarantined) == (3, 1)
    frame = pd.DataFrame(records[1:] + [{**records[0], "txn_id": "J9", "amount": -1}])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    page = ingest_frame(engine, frame, source="api:tapbox", source_ref="page 2", now=NOW)
    assert (page.rows_read, page.accepted, page.duplicates, page.quarantined) == (3, 0, 2, 1)
    assert batch_row(engine, page.batch_id).source == "api:tapbox"


def test_cli_prints_json_per_file_and_exits_non_zero_for_an_unusable_one(
    engine, db_url, tmp_path, monkeypatch
):
    register(engine, "P1")
    monkeypatch.setenv("EINCOME_DB_URL", db_url)
    monkeypatch.setenv("EINCOME_HOME", str(tmp_path / "var"))
    good = write(
        tmp_path, "good.csv", good_rows(5) + "B1,P9,2026-03-01T10:00:00+07:00,1,cash,paid,\n"
    )
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    outcome = CliRunner().invoke(app, ["ingest", "--json", str(good), str(junk)])
    lines = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("{")]
    assert outcome.exit_code == 2
    assert {k: lines[0][k] for k in ("rows_read", "accepted", "quarantined", "duplicates")} == {
        "rows_read": 6,
        "accepted": 5,
        "quarantined": 1,
        "duplicates": 0,
    }
    assert lines[1]["file"] == str(junk) and lines[1]["status"] == "rejected"
    only_good = CliRunner().invoke(app, ["ingest", str(good)])
    assert only_good.exit_code == 0 and "│ ok " in only_good.stdout


def test_the_same_txn_id_three_times_in_a_chunk_does_not_crash_the_batch(engine, tmp_path):
    # Was: ValueError "operands could not be broadcast together with shapes (2,) (4,)", 0 stored.
    register(engine, "P1")
    changed = good_rows(1, start=3).replace(",cash,", ",qris,")
    body = good_rows(100) + good_rows(1, start=3) * 3 + changed + good_rows(1, start=7) * 4
    result = ingest_file(engine, write(tmp_path, "a.csv", body), now=NOW)
    assert (result.rows_read, result.accepted, result.duplicates, result.quarantined) == (
        108,
        100,
        7,
        1,
    )
    (conflict,) = quarantine_reasons(engine, result.batch_id)
    assert "payment_method qris (stored cash)" in conflict["reasons"]
    # A file sent three times over in one upload: one copy stored, the rest duplicates.
    thrice = ingest_file(engine, write(tmp_path, "b.csv", good_rows(50, start=200) * 3), now=NOW)
    assert (thrice.accepted, thrice.duplicates, thrice.quarantined) == (50, 100, 0)
    assert count(engine, transactions) == 150


@pytest.mark.slow
def test_reingesting_a_file_costs_about_what_the_first_ingest_did_not_quadratic(engine, tmp_path):
    # Was: 10k / 20k / 40k rows re-ingested in 2.0 / 8.9 / 36.3 s on SQLite (7 / 23 / 86 s on
    # PostgreSQL): every stored key was deleted from an unindexed stage one by one.
    import time

    register(engine, *[f"P{i}" for i in range(5)])
    body = "".join(
        f"T{i},P{i % 5},2026-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}+07:00,{1000 + i},cash,paid,\n"
        for i in range(40_000)
    )
    path = write(tmp_path, "a.csv", body)
    started = time.perf_counter()
    ingest_file(engine, path, now=NOW)
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = ingest_file(engine, path, now=NOW)
    second = time.perf_counter() - started
    assert (again.accepted, again.duplicates) == (0, 40_000)
    assert second < 3 * first + 3.0, (first, second)
