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
