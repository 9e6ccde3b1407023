"""The Arrow + ADBC ingest path against the classic one: the same feed stores, quarantines and
aggregates exactly the same rows, on both databases, and leaves no stage behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from pipeline.intake.feeds.csv_feed import _text_frame
from pipeline.intake.ingest import ingest_file, quarantine_reasons
from pipeline.store import bulk
from pipeline.store.schema import hour_aggregates, minute_aggregates, transactions
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id,payer_ref\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def feed(path, n: int, *, prefix: str = "T"):
    lines = [HEADER]
    for i in range(n):
        amount = "-5" if i % 97 == 0 else str(1000 + i)  # a bad row now and then
        payer = "" if i % 3 else f"payer{i % 7}"
        status = ("paid", "void", "refund")[i % 11 % 3]
        lines.append(
            f"{prefix}{i},P{i % 4},2026-03-01T{i // 3600 % 10:02d}:{i // 60 % 60:02d}:"
            f"{i % 60:02d}+07:00,{amount},{'cash' if i % 2 else 'qris'},{status},op{i % 5},{payer}\n"
        )
    lines.append(f"{prefix}1,P1,2026-03-01T00:00:01+07:00,999,cash,paid,op1,\n")  # conflict
    lines.append("broken,line\n")
    path.write_text("".join(lines))
    return path


def stored(engine):
    with engine.connect() as connection:
        return {
            name: connection.execute(select(table).order_by(*table.primary_key.columns)).all()
            for name, table in (
                ("transactions", transactions),
                ("minutes", minute_aggregates),
                ("hours", hour_aggregates),
            )
        }


def _without_batch(rows):
    return [tuple(v for k, v in row._asdict().items() if k != "batch_id") for row in rows]


@pytest.mark.slow
def test_arrow_and_classic_paths_store_the_same_rows_and_leave_no_stage(
    engine, tmp_path, monkeypatch
):
    register(engine, "P0", "P1", "P2", "P3")
    path = feed(tmp_path / "a.csv", 3000)
    # Chunks of 200 rows: more chunks than SQLite has stage slots, so its fallback runs too.
    arrow = ingest_file(engine, path, chunk_rows=200, now=NOW)
    assert arrow.accepted + arrow.quarantined + arrow.duplicates == arrow.rows_read
    first = stored(engine)
    reasons = [(q["line_no"], q["reasons"]) for q in quarantine_reasons(engine, arrow.batch_id)]
    assert not list(tmp_path.glob(".eincome-stage-*"))
    with engine.begin() as connection:
        for table in ("minute_aggregates", "hour_aggregates", "quarantine", "transactions"):
            connection.exec_driver_sql(f"DELETE FROM {table}")
        if connection.dialect.name == "postgresql":
            left = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'eincome%%stage%%'"
            ).scalar_one()
            assert left == 0

    monkeypatch.setattr(bulk, "ARROW_WRITES", False)
    classic = ingest_file(engine, path, chunk_rows=200, now=NOW)
    second = stored(engine)
    assert (arrow.accepted, arrow.quarantined, arrow.duplicates) == (
        classic.accepted,
        classic.quarantined,
        classic.duplicates,
    )
    assert arrow.quarantined == 31 + 1 + 1  # 31 negative amounts, one conflict, one bad line
    for name in first:
        assert _without_batch(first[name]) == _without_batch(second[name]), name
    assert len(first["transactions"]) == arrow.accepted > 2900
    again = [(q["line_no"], q["reasons"]) for q in quarantine_reasons(engine, classic.batch_id)]
    assert reasons == again


def test_a_resend_through_the_arrow_path_is_all_duplicates(engine, tmp_path):
    register(engine, "P0", "P1", "P2", "P3")
    path = feed(tmp_path / "a.csv", 500)
    first = ingest_file(engine, path, now=NOW)
    again = ingest_file(engine, path, now=NOW)
    assert again.accepted == 0
    assert again.duplicates == first.accepted + first.duplicates
    assert len(stored(engine)["transactions"]) == first.accepted


def test_arrow_reads_every_plain_value_as_the_text_it_was():
    frame = _text_frame(
        b"NA,null,007, spaced ,1e3\n,x,,y,\r\n", ["txn_id", "a", "b", "c", "amount"]
    )
    assert frame.iloc[0].tolist() == ["NA", "null", "007", " spaced ", "1e3"]
    assert [isinstance(v, float) for v in frame.iloc[1].tolist()] == [
        True,
        False,
        True,
        False,
        True,
    ]
    assert all(str(dtype) == "object" for dtype in frame.dtypes)


def test_a_line_longer_than_arrows_block_is_read_whole():
    long_value = "x" * (5 << 20)
    frame = _text_frame(f"a,{long_value}\nb,c\n".encode(), ["txn_id", "note"])
    assert frame["note"].tolist() == [long_value, "c"]


def test_an_in_memory_batch_of_dicts_or_an_arrow_table_ingests_with_lineage(engine):
    import pyarrow as pa

    from pipeline.intake.ingest import ingest_rows

    register(engine, "P1")
    rows = [
        {
            "txn_id": f"R{i}",
            "point_id": "P1",
            "occurred_at": "2026-03-01T10:00:00+07:00",
            "amount": 1000 if i else -1,
            "payment_method": "cash",
            "status": "paid",
        }
        for i in range(4)
    ]
    first = ingest_rows(engine, rows, source="push:test", source_ref="request 1", now=NOW)
    assert (first.accepted, first.quarantined, first.rows_read) == (3, 1, 4)
    again = ingest_rows(
        engine, pa.Table.from_pylist(rows), source="push:test", source_ref="request 2", now=NOW
    )
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 3, 1)


def test_chunks_that_repeat_earlier_chunks_flush_the_gathered_rows_more_often_than_sqlite_has_stage_slots(
    engine, tmp_path
):
    """SQLite gathers a batch's chunks into one stage; a chunk whose key range meets a gathered
    or stored one moves them in first and is then checked key by key. Twenty such chunks need
    more moves than a transaction has stage slots: the later ones go in the classic way."""
    register(engine, "P0", "P1", "P2", "P3")
    lines = [HEADER]
    for i in range(1000):
        lines.append(
            f"T{i:05d},P{i % 4},2026-03-01T01:{i // 60 % 60:02d}:{i % 60:02d}+07:00,"
            f"{1000 + i},cash,paid,op1,\n"
        )
        if i % 50 == 49:  # the next chunk starts with a repeat of this chunk's first row
            lines.append(lines[-50])
    path = tmp_path / "a.csv"
    path.write_text("".join(lines))
    result = ingest_file(engine, path, chunk_rows=50, now=NOW)
    assert (result.accepted, result.duplicates, result.quarantined) == (1000, 20, 0)
    rows = stored(engine)
    assert sorted(row.txn_id for row in rows["transactions"]) == sorted(
        f"T{i:05d}" for i in range(1000)
    )
    assert sum(row.txn_count for row in rows["hours"]) == 1000
    assert not list(tmp_path.glob(".eincome-stage-*"))


def test_new_keys_inside_a_stored_key_range_are_stored_by_the_checked_path(engine, tmp_path):
    """Odd txn_ids first, then the even ones between them: every range meets a stored one, so
    the second batch takes the checked path, and stores every row as new."""
    register(engine, "P0", "P1", "P2", "P3")
    for parity in (1, 0):
        lines = [HEADER] + [
            f"T{i:05d},P{i % 4},2026-03-01T01:{i // 60 % 60:02d}:{i % 60:02d}+07:00,{1000 + i},"
            "cash,paid,op1,\n"
            for i in range(600)
            if i % 2 == parity
        ]
        path = tmp_path / f"p{parity}.csv"
        path.write_text("".join(lines))
        result = ingest_file(engine, path, chunk_rows=100, now=NOW)
        assert (result.accepted, result.duplicates, result.quarantined) == (300, 0, 0)
    assert len(stored(engine)["transactions"]) == 600
    assert sum(row.txn_count for row in stored(engine)["hours"]) == 600
