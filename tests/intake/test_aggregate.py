"""Minute and hour aggregates against a hand computation, across a UTC hour boundary."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from pipeline.intake.aggregate import aggregate_range, hour_runs
from pipeline.store.schema import hour_aggregates, ingest_batches, minute_aggregates, transactions
from tests.helpers.registry import register


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC)


# (point, txn, time, amount, method, status, operator)
ROWS = [
    ("P1", "a", at(9, 59, 59), 5000, "cash", "paid", "op1"),
    ("P1", "b", at(10, 0, 0), 2000, "qris", "paid", "op2"),
    ("P1", "c", at(10, 0, 30), 3000, "cash", "paid", "op1"),
    ("P1", "d", at(10, 0, 45), 3000, "cash", "void", "op3"),
    ("P1", "e", at(10, 59, 0), 1500, "card", "refund", None),
    ("P2", "a", at(10, 30, 0), 9000, "cash", "paid", "op9"),
]


def store(engine, rows=ROWS) -> None:
    # As ingest stores them: only registered points' transactions (reads by time go point by point).
    register(engine, *{row[0] for row in rows})
    with engine.begin() as connection:
        batch = connection.execute(
            insert(ingest_batches)
            .values(source="test", source_ref="inline", started_at=at(0, 0), status="ok")
            .returning(ingest_batches.c.batch_id)
        ).scalar_one()
        connection.execute(
            insert(transactions),
            [
                {
                    "point_id": p,
                    "txn_id": t,
                    "occurred_at": when,
                    "amount": amount,
                    "payment_method": method,
                    "status": status,
                    "operator_id": operator,
                    "batch_id": batch,
                }
                for p, t, when, amount, method, status, operator in rows
            ],
        )


def read(engine, table, key):
    with engine.connect() as connection:
        result = connection.execute(select(table).order_by(table.c.point_id, table.c[key]))
        return {(r.point_id, r._mapping[key]): r._asdict() for r in result}


def test_hour_and_minute_aggregates_match_a_hand_computation(engine):
    store(engine)
    aggregate_range(engine, at(9, 0), at(11, 0))
    hours = read(engine, hour_aggregates, "hour_start")
    assert set(hours) == {("P1", at(9, 0)), ("P1", at(10, 0)), ("P2", at(10, 0))}
    p1_10 = hours[("P1", at(10, 0))]
    assert {
        k: p1_10[k]
        for k in (
            "txn_count",
            "gross_paid",
            "void_count",
            "void_amount",
            "refund_count",
            "refund_amount",
            "cash_amount",
            "operators",
            "max_ticket",
        )
    } == {
        "txn_count": 2,
        "gross_paid": 5000,
        "void_count": 1,
        "void_amount": 3000,
        "refund_count": 1,
        "refund_amount": 1500,
        "cash_amount": 3000,
        "operators": 3,
        "max_ticket": 3000,
    }
    # 09:59:59 belongs to the 09:00 hour, not the next one.
    assert hours[("P1", at(9, 0))]["gross_paid"] == 5000
    minutes = read(engine, minute_aggregates, "minute_start")
    assert set(minutes) == {
        ("P1", at(9, 59)),
        ("P1", at(10, 0)),
        ("P1", at(10, 59)),
        ("P2", at(10, 30)),
    }
    assert (
        minutes[("P1", at(10, 0))]["gross_paid"] == 5000
        and minutes[("P1", at(10, 0))]["void_count"] == 1
    )
    assert (
        minutes[("P1", at(10, 59))]["txn_count"] == 0
        and minutes[("P1", at(10, 59))]["max_ticket"] == 0
    )


def test_rerunning_an_interval_gives_the_same_rows_and_point_filter_limits_it(engine):
    store(engine)
    aggregate_range(engine, at(9, 0), at(11, 0))
    first = read(engine, hour_aggregates, "hour_start")
    aggregate_range(engine, at(9, 30), at(10, 15))  # snapped out to whole hours 09:00-11:00
    assert read(engine, hour_aggregates, "hour_start") == first
    store(
        engine,
        [
            ("P2", "late", at(10, 45), 1000, "cash", "paid", "op9"),
            ("P1", "late", at(10, 45), 7, "cash", "paid", None),
        ],
    )
    aggregate_range(engine, at(10, 0), at(11, 0), point_ids=["P2"])
    hours = read(engine, hour_aggregates, "hour_start")
    assert hours[("P2", at(10, 0))]["gross_paid"] == 10_000
    assert hours[("P1", at(10, 0))]["gross_paid"] == 5000  # P1 not recomputed


def test_touched_hours_merge_into_runs():
    assert hour_runs([at(12, 0), at(10, 0), at(11, 0), at(15, 0)]) == [
        (at(10, 0), at(13, 0)),
        (at(15, 0), at(16, 0)),
    ]


def test_summarise_gives_what_a_pandas_groupby_gives():
    import numpy as np
    import pandas as pd

    from pipeline.intake.aggregate import HOUR_US, MINUTE_US, _summarise_by_groupby, summarise

    rng = np.random.default_rng(11)
    for n in (1, 2, 50, 5000):
        rows = pd.DataFrame(
            {
                "point": rng.integers(0, 7, n).astype(np.int32),
                "us": rng.integers(10**15, 10**15 + 3 * 86_400 * 10**6, n),
                "amount": rng.integers(0, 10**6, n),
                "status": rng.integers(-1, 3, n).astype(np.int8),
                "cash": rng.random(n) < 0.5,
                "operator": rng.integers(-1, 4, n).astype(np.int32),
            }
        )
        no_operator = rows.assign(operator=np.full(n, -1, dtype=np.int32))
        for unit in (MINUTE_US, HOUR_US):
            for frame in (rows, no_operator):
                fast, plain = summarise(frame, unit), _summarise_by_groupby(frame, unit)
                pd.testing.assert_frame_equal(
                    fast.astype(np.int64), plain[fast.columns].astype(np.int64), check_dtype=False
                )


def test_summed_hour_keys_grow_as_numpy_unique_and_union_would():
    """The batch's summed point-hour keys are kept by a sort and a sorted insert, not
    ``np.unique``/``np.union1d`` (hash-based since NumPy 2.3: ~100x slower at 2M keys)."""
    import numpy as np

    from pipeline.intake.aggregate import _insert_sorted, _sorted_unique

    rng = np.random.default_rng(5)
    summed = np.empty(0, dtype=np.int64)
    expected = np.empty(0, dtype=np.int64)
    for n in (0, 1, 2, 300, 5000, 1):
        keys = rng.integers(0, 20_000, n, dtype=np.int64)
        touched = _sorted_unique(keys)
        np.testing.assert_array_equal(touched, np.unique(keys))
        fresh = touched[~np.isin(touched, summed)]
        summed = _insert_sorted(summed, fresh)
        expected = np.union1d(expected, keys)
        np.testing.assert_array_equal(summed, expected)
        assert summed.dtype == np.int64


def test_dirty_hour_keys_split_as_numpy_union_setdiff_and_isin_would():
    """A batch's dirty point-hours (earlier batches' hours moved out of the fresh ones, the keys
    gathered in ``finish``, the earlier hours' keys) are kept by sorts and sorted inserts, not
    ``np.union1d``/``np.unique`` (hash-based since NumPy 2.3: ~1.6 s a call at 2M keys)."""
    import numpy as np
    import pandas as pd

    from pipeline.intake.aggregate import (
        _HOUR_BITS,
        HOUR_US,
        _isin_sorted,
        _keys_of,
        _move_earlier,
        _sorted_unique,
    )

    rng = np.random.default_rng(11)
    for n_keys, n_summed, n_earlier in ((0, 0, 0), (50, 0, 10), (5000, 2000, 1), (5000, 300, 0)):
        keys = rng.integers(0, 20_000, n_keys, dtype=np.int64)
        touched = _sorted_unique(keys)
        summed = _sorted_unique(rng.integers(0, 20_000, n_summed, dtype=np.int64))
        dirty = touched[_isin_sorted(touched, summed)]
        fresh = touched[~_isin_sorted(touched, summed)]
        earlier = _sorted_unique(rng.choice(fresh, min(n_earlier, len(fresh)), replace=False))
        moved_dirty, moved_fresh = _move_earlier(dirty, fresh, earlier)
        np.testing.assert_array_equal(moved_dirty, np.union1d(dirty, earlier))
        np.testing.assert_array_equal(moved_fresh, np.setdiff1d(fresh, earlier))
        if len(moved_dirty):
            np.testing.assert_array_equal(
                _isin_sorted(keys, moved_dirty), np.isin(keys, moved_dirty)
            )
        assert moved_dirty.dtype == moved_fresh.dtype == np.int64
        gathered = np.concatenate((moved_dirty, dirty, earlier))
        np.testing.assert_array_equal(_sorted_unique(gathered), np.unique(gathered))

    hours = pd.DataFrame(
        {"point": [3, 1, 3, 1, 0], "hour": np.array([7, 2, 7, 5, 9], dtype=np.int64) * HOUR_US}
    )
    expected = np.unique((hours["point"].to_numpy() << _HOUR_BITS) | hours["hour"] // HOUR_US)
    np.testing.assert_array_equal(_keys_of(hours), expected)
