"""The detection readers build their frames from the driver's tuples, skipping SQLAlchemy's
result rows: what they return must be what those rows give, value for value and type for type,
on both databases (a column gaining result processing would break it)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import String, select, type_coerce

from pipeline.detection.features import load_hour_aggregates, load_transactions
from pipeline.detection.features.loading import load_operator_sales, operator_usuals
from pipeline.detection.features.operator_signals import operator_sales
from pipeline.intake.aggregate import AGGREGATE_COLUMNS
from pipeline.store.schema import hour_aggregates, transactions, transactions_between
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions


def _through_rows(engine, query, columns: list[str]) -> pd.DataFrame:
    """The frame as the readers built it before: SQLAlchemy rows, one list per column."""
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame(dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)))


def test_readers_return_what_sqlalchemy_rows_give(engine):
    pts = make_points(4)
    load_world(engine, pts, make_transactions(pts, days=9, seed=5))
    a = pd.Timestamp(START + pd.Timedelta(days=2)).to_pydatetime()
    b = pd.Timestamp(START + pd.Timedelta(days=6, hours=5)).to_pydatetime()

    h = hour_aggregates.c
    aggregate_columns = ["point_id", "hour_start", *AGGREGATE_COLUMNS]
    expected = _through_rows(
        engine,
        select(
            h.point_id,
            type_coerce(h.hour_start, String),
            *(h[c] for c in AGGREGATE_COLUMNS),
        ).where((h.hour_start >= a) & (h.hour_start < b)),
        aggregate_columns,
    )
    expected["hour_start"] = pd.to_datetime(expected["hour_start"], utc=True, format="ISO8601")
    got = load_hour_aggregates(engine, a, b)
    assert len(got) > 100
    pd.testing.assert_frame_equal(got, expected)

    t = transactions.c
    txn_columns = [
        "point_id",
        "occurred_at",
        "amount",
        "payment_method",
        "status",
        "operator_id",
        "payer_ref",
    ]
    expected = _through_rows(
        engine,
        select(
            t.point_id,
            type_coerce(t.occurred_at, String),
            t.amount,
            t.payment_method,
            t.status,
            t.operator_id,
            t.payer_ref,
        ).where(transactions_between(a, b)),
        txn_columns,
    )
    expected["occurred_at"] = pd.to_datetime(expected["occurred_at"], utc=True, format="ISO8601")
    expected["amount"] = expected["amount"].astype("int64")
    got = load_transactions(engine, a, b)
    assert len(got) > 1000 and got["payer_ref"].isna().any()
    if engine.dialect.name != "sqlite":  # PostgreSQL's order is its plan's
        got, expected = (
            f.sort_values(list(f.columns)).reset_index(drop=True) for f in (got, expected)
        )
    pd.testing.assert_frame_equal(got, expected)

    usual = operator_usuals(engine, a, b)
    assert len(usual) >= 4 and usual["paid_n"].dtype == "float64"
    assert usual["op_usual_cash"].between(0, 1).all()


def test_operator_sales_read_from_the_store_are_those_of_the_transactions(engine):
    """The operators' earlier days are read as their sales only: the same rows as the
    transactions of the range filtered by ``operator_sales``, including sales without an
    operator and voids left out."""
    pts = make_points(3)
    txns = make_transactions(pts, days=5, seed=8)
    txns.loc[txns.index[::7], "operator_id"] = None
    txns.loc[txns.index[3::11], "operator_id"] = ""
    load_world(engine, pts, txns)
    a = pd.Timestamp(START + pd.Timedelta(days=1)).to_pydatetime()
    b = pd.Timestamp(START + pd.Timedelta(days=4, hours=3)).to_pydatetime()
    expected = operator_sales(load_transactions(engine, a, b)).reset_index(drop=True)
    got = load_operator_sales(engine, a, b)
    everything = load_transactions(engine, a, b)
    assert 0 < len(got) < len(everything) and (everything["status"] != "paid").any()
    if engine.dialect.name != "sqlite":
        got, expected = (
            f.sort_values(list(f.columns)).reset_index(drop=True) for f in (got, expected)
        )
    pd.testing.assert_frame_equal(got, expected)
