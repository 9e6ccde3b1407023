from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, inspect, select

from pipeline.store import connect
from pipeline.store.schema import ingest_batches, metadata


def test_migrations_create_every_table(engine):
    assert set(inspect(engine).get_table_names()) >= set(metadata.tables)


def test_connect_twice_is_a_no_op(db_url):
    connect(db_url).dispose()
    connect(db_url).dispose()


def test_times_come_back_aware_in_utc(engine):
    jakarta = timezone(timedelta(hours=7))
    started = datetime(2026, 3, 1, 9, 30, tzinfo=jakarta)
    with engine.begin() as connection:
        connection.execute(
            insert(ingest_batches).values(
                source="file", source_ref="x.csv", started_at=started, status="ok"
            )
        )
        stored = connection.execute(select(ingest_batches.c.started_at)).scalar_one()
    assert stored == started
    assert stored.utcoffset() == timedelta(0)


def test_naive_times_are_refused(engine):
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as connection:
        connection.execute(
            insert(ingest_batches).values(
                source="f", source_ref="x", started_at=datetime(2026, 1, 1), status="ok"
            )
        )


def test_utc_type_round_trip_keeps_microseconds(engine):
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(ingest_batches).values(source="f", source_ref="x", started_at=when, status="ok")
        )
        assert connection.execute(select(ingest_batches.c.started_at)).scalar_one() == when


def test_sqlite_minute_aggregates_made_before_0003_are_rebuilt_keyed_by_time(tmp_path):
    from alembic import command

    from pipeline.store.db import _alembic_config, create

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create(url)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002_recon")
        connection.exec_driver_sql(
            "INSERT INTO minute_aggregates (point_id, minute_start, txn_count, gross_paid, "
            "void_count, void_amount, refund_count, refund_amount, cash_amount, operators, "
            "max_ticket) VALUES ('P1', '2026-03-01 03:00:00.000000', 2, 7000, 0, 0, 0, 0, 5000, "
            "1, 5000)"
        )
    engine.dispose()

    migrated = connect(url)
    with migrated.connect() as connection:
        ddl = dict(
            connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            ).all()
        )
        stored = connection.exec_driver_sql(
            "SELECT point_id, minute_start, gross_paid FROM minute_aggregates"
        )
        assert stored.all() == [("P1", "2026-03-01 03:00:00.000000", 7000)]
        minute_indexes = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name = 'minute_aggregates'"
        ).all()
    assert ddl["minute_aggregates"].endswith("WITHOUT ROWID")
    assert "PRIMARY KEY (minute_start, point_id)" in ddl["minute_aggregates"]
    assert minute_indexes == []
    assert not ddl["transactions"].endswith("WITHOUT ROWID")


def test_reads_by_time_walk_the_point_time_index_not_the_table(tmp_path):
    """Transactions have no index on time alone (0004): a read by time across points must seek
    through (point_id, occurred_at), or every hourly run and backfill chunk scans the table."""
    from sqlalchemy import func

    from pipeline.store.schema import transactions_between

    engine = connect(f"sqlite:///{tmp_path / 'plan.db'}")
    query = select(func.count()).where(
        transactions_between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    )
    with engine.connect() as connection:
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        plan = " | ".join(
            row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        )
    seek = "INDEX ix_transactions_point_id_occurred_at (point_id=? AND occurred_at>? AND occurred_at<?)"
    assert f"SEARCH transactions USING COVERING {seek}" in plan, plan
    assert "SCAN transactions" not in plan, plan


def test_the_time_index_is_brin_on_postgres_and_absent_on_sqlite(engine):
    """After 0004 time alone costs a stored row nothing on SQLite and next to nothing on
    PostgreSQL (a BRIN summary per block range, not a B-tree entry per row)."""
    names = {index["name"] for index in inspect(engine).get_indexes("transactions")}
    if engine.dialect.name == "sqlite":
        assert "ix_transactions_occurred_at" not in names
        return
    with engine.connect() as connection:
        definition = connection.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_transactions_occurred_at'"
        ).scalar_one()
    assert "USING brin (occurred_at)" in definition
