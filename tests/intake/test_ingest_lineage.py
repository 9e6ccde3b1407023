"""Every stored transaction names the batch that stored it, on both databases.

PostgreSQL has no foreign key from transactions to ingest_batches (migration 0018: its per-row
check cost nearly as much as the key and index together), so lineage rests on ingest, the one
writer: these tests pin it through each of the writer's paths - the bulk append, the checked
path of a resend (keys already stored), and a failed batch - on SQLite (which keeps the key)
and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, inspect, select

import pipeline.intake.ingest.run as ingest_run
from pipeline.intake.ingest import BatchFailedError, ingest_file
from pipeline.store.schema import ingest_batches, transactions
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def rows(start: int, stop: int, point: str = "P1") -> str:
    return "".join(
        f"T{i:05d},{point},2026-03-01T{8 + i // 3600 % 12:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
        f"+07:00,{1000 + i},cash,paid,op{i % 3}\n"
        for i in range(start, stop)
    )


def feed(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def stored_by_batch(engine) -> dict[int | None, int]:
    """Stored transactions per batch, joined to ingest_batches: None counts rows naming no batch."""
    t, b = transactions.c, ingest_batches.c
    query = (
        select(b.batch_id, func.count())
        .select_from(transactions.outerjoin(ingest_batches, b.batch_id == t.batch_id))
        .group_by(b.batch_id)
    )
    with engine.connect() as connection:
        return {batch: n for batch, n in connection.execute(query)}


def test_every_stored_row_names_the_batch_that_stored_it(engine, tmp_path):
    register(engine, "P1", "P2")
    first = ingest_file(
        engine, feed(tmp_path, "a.csv", rows(0, 3_000) + rows(0, 500, "P2")), now=NOW,
        chunk_rows=1_000,
    )  # fmt: skip
    # Resends T02500-T02999 of P1 (stored by the first batch) beside new rows: the checked path.
    second = ingest_file(engine, feed(tmp_path, "b.csv", rows(2_500, 4_000)), now=NOW)
    assert (first.accepted, second.accepted, second.duplicates) == (3_500, 1_000, 500)
    assert stored_by_batch(engine) == {first.batch_id: 3_500, second.batch_id: 1_000}
    with engine.connect() as connection:
        statuses = connection.execute(select(ingest_batches.c.status)).scalars().all()
        resent = connection.execute(
            select(transactions.c.batch_id).where(transactions.c.txn_id == "T02700")
        ).scalar_one()
    assert statuses == ["ok", "ok"]
    assert resent == first.batch_id  # a duplicate keeps the lineage of the batch that stored it


def test_a_failed_batch_stores_no_row_to_name_it(engine, tmp_path, monkeypatch):
    register(engine, "P1")
    stored = ingest_file(engine, feed(tmp_path, "a.csv", rows(0, 100)), now=NOW)

    def fail(*args, **kwargs):
        raise OSError("disk gone")

    # After every chunk's rows are written, before the batch commits.
    monkeypatch.setattr(ingest_run, "finish_aggregates", fail)
    with pytest.raises(BatchFailedError) as failed:
        ingest_file(engine, feed(tmp_path, "b.csv", rows(100, 300)), now=NOW)
    assert stored_by_batch(engine) == {stored.batch_id: 100}
    with engine.connect() as connection:
        status = connection.execute(
            select(ingest_batches.c.status).where(
                ingest_batches.c.batch_id == failed.value.batch_id
            )
        ).scalar_one()
    assert status == "failed"


def test_the_batch_key_is_checked_by_sqlite_and_left_to_ingest_on_postgres(engine):
    keys = inspect(engine).get_foreign_keys("transactions")
    if engine.dialect.name == "sqlite":
        assert [(k["referred_table"], k["constrained_columns"]) for k in keys] == [
            ("ingest_batches", ["batch_id"])
        ]
    else:
        assert keys == []


@pytest.mark.postgres
def test_migration_0018_drops_the_postgres_key_and_its_downgrade_restores_it(postgres_url):
    from alembic import command

    from pipeline.store import connect
    from pipeline.store.db import _alembic_config

    engine = connect(postgres_url)
    with engine.begin() as connection:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0017_evidence")
    assert [k["name"] for k in inspect(engine).get_foreign_keys("transactions")] == [
        "fk_transactions_batch_id_ingest_batches"
    ]
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert inspect(engine).get_foreign_keys("transactions") == []
    engine.dispose()
