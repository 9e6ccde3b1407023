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
