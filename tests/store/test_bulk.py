"""The bulk write helpers: what goes in comes back exactly, on both backends."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import IntegrityError

from pipeline.store.bulk import copy_columns, prefetched


def test_awkward_text_and_nulls_survive_the_bulk_write(engine):
    # COPY's CSV format: commas, quotes, newlines and backslashes must come back as they went in,
    # and None must be NULL.
    awkward = ["a,b", 'say "hi"', "two\nlines", "back\\slash", "tab\there", "ünï"]
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE bulk_probe (n BIGINT PRIMARY KEY, label TEXT, note TEXT)"
        )
        copy_columns(
            connection,
            "bulk_probe",
            {
                "n": list(range(len(awkward))),
                "label": awkward,
                "note": [None if i % 2 else "x" for i in range(len(awkward))],
            },
        )
        stored = connection.exec_driver_sql("SELECT n, label, note FROM bulk_probe ORDER BY n")
        assert [tuple(row) for row in stored] == [
            (i, text, None if i % 2 else "x") for i, text in enumerate(awkward)
        ]
        with pytest.raises(IntegrityError):
            copy_columns(connection, "bulk_probe", {"n": [0], "label": ["again"], "note": [None]})


def test_prefetched_keeps_order_runs_one_ahead_and_raises_in_order():
    threads = []

    def work(item: int) -> int:
        threads.append(threading.current_thread().name)
        if item == 3:
            raise ValueError("bad item 3")
        return item * 10

    results = prefetched(range(5), work)
    assert next(results) == 0
    assert next(results) == 10
    assert next(results) == 20
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)
    assert all(name.startswith("eincome-prefetch") for name in threads)


def _stage_tables(connection) -> list[str]:
    if connection.dialect.name != "postgresql":
        return []
    return (
        connection.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'eincome%%stage%%'"
        )
        .scalars()
        .all()
    )


def test_the_arrow_path_writes_text_nulls_and_times_exactly_and_leaves_no_stage(engine):
    import numpy as np

    from pipeline.store.bulk import release_stages, uses_arrow

    awkward = ["a,b", 'say "hi"', "two\nlines", "back\\slash", "tab\there", "ünï"]
    micros = np.array([0, 1, 1_700_000_000_123_456, 1, 2, 3], dtype=np.int64)
    with engine.connect() as connection:
        assert uses_arrow(connection)  # a file SQLite database or PostgreSQL: the ADBC path
        with connection.begin():
            connection.exec_driver_sql(
                "CREATE TABLE bulk_arrow (n BIGINT PRIMARY KEY, label TEXT, note TEXT, "
                f"at {'TEXT' if connection.dialect.name == 'sqlite' else 'TIMESTAMPTZ'})"
            )
            copy_columns(
                connection,
                "bulk_arrow",
                {
                    "n": np.arange(len(awkward)),
                    "label": np.array(awkward, dtype=object),
                    "note": np.array([None if i % 2 else "x" for i in range(6)], dtype=object),
                    "at": micros.view("datetime64[us]"),
                },
            )
            with pytest.raises(IntegrityError):
                copy_columns(connection, "bulk_arrow", {"n": [0], "label": ["again"]})
            stored = connection.exec_driver_sql(
                "SELECT n, label, note, at FROM bulk_arrow ORDER BY n"
            ).all()
        release_stages(connection)
        assert [tuple(row[:3]) for row in stored] == [
            (i, text, None if i % 2 else "x") for i, text in enumerate(awkward)
        ]
        at = str(stored[2][3])
        assert at.startswith("2023-11-14") and "22:13:20.123456" in at
        assert _stage_tables(connection) == []
        assert "eincome_stages" not in connection.info


def test_a_stage_left_by_a_killed_process_is_swept(engine):
    from pipeline.store import bulk

    with engine.connect() as connection:
        if connection.dialect.name != "postgresql":
            pytest.skip("SQLite stages are scratch files of the process, deleted with it")
        dead = 2**22 + 12345  # above Linux's default pid_max: no such process
        name = f"{bulk._STAGE_PREFIX}{bulk._HOST}_{dead}_abc"
        live = f"{bulk._STAGE_PREFIX}{bulk._HOST}_{__import__('os').getpid()}_abc"
        other_host = f"{bulk._STAGE_PREFIX}zzzzzz_{dead}_abc"
        for table in (name, live, other_host):
            connection.exec_driver_sql(f"CREATE UNLOGGED TABLE {table} (n BIGINT)")
        connection.commit()
        assert bulk.drop_stale_stages(connection) == [name]
        assert sorted(_stage_tables(connection)) == sorted([live, other_host])
        for table in (live, other_host):
            connection.exec_driver_sql(f"DROP TABLE {table}")
        connection.commit()


def test_sqlite_time_text_is_the_text_sqlalchemy_stores_for_every_instant():
    import numpy as np

    from pipeline.store.bulk import sqlite_time_text, utc_text

    rng = np.random.default_rng(5)
    instants = np.concatenate(
        [
            [0, 1, -1, 999_999, 86_400_000_000 - 1, 253_402_300_799_999_999],
            [-62_135_596_800_000_000, -62_135_596_800_000_001, 253_402_300_800_000_000],
            rng.integers(1_700_000_000_000_000, 1_800_000_000_000_000, 5000),
            rng.integers(-(10**17), 10**17, 500),  # millennia apart: the exact way
        ]
    ).astype(np.int64)
    for part in (instants[:6], instants[6:9], instants[9:5009], instants, instants[:0]):
        assert sqlite_time_text(part).to_pylist() == utc_text(part, "sqlite")
