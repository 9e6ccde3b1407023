"""StoredWeeks, the walk forward's read-once store reader: any range it serves is what the store
itself returns for that range (transactions in the same order), across week edges, for empty
ranges and after weeks were dropped from memory."""

from __future__ import annotations

import pandas as pd

from pipeline.detection.features import StoredWeeks, load_hour_aggregates, load_transactions
from tests.helpers.detect_fixtures import (
    START,
    count_calls,
    load_world,
    make_points,
    make_transactions,
)


def _by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["point_id", "hour_start"]).reset_index(drop=True)


def test_stored_weeks_serve_what_the_store_returns(engine):
    pts = make_points(5)
    load_world(engine, pts, make_transactions(pts, days=24, seed=3))
    stored = StoredWeeks(engine, keep=2)  # small, so later ranges re-read dropped weeks
    day, hour = pd.Timedelta(days=1), pd.Timedelta(hours=1)
    ranges = [
        (START, START + 24 * day),  # every week at once
        (START + 3 * day + 5 * hour, START + 17 * day + hour),  # across two week edges
        (START + 10 * day, START + 10 * day + hour),
        (START + 2 * day + 2 * hour, START + 2 * day + 3 * hour),  # a closed hour: nothing
        (START - 9 * day, START + day),  # from before the data
        (START + 1 * day, START + 8 * day),  # weeks dropped since, read again
    ]
    served_any = False
    # SQLite reads them by its (point_id, occurred_at) index; PostgreSQL's order is its plan's.
    in_order = engine.dialect.name == "sqlite"
    for a, b in ranges:
        a, b = pd.Timestamp(a).to_pydatetime(), pd.Timestamp(b).to_pydatetime()
        txns, direct = stored.transactions(a, b), load_transactions(engine, a, b)
        if not in_order:
            txns, direct = (
                f.sort_values(list(f.columns)).reset_index(drop=True) for f in (txns, direct)
            )
        pd.testing.assert_frame_equal(txns, direct)
        pd.testing.assert_frame_equal(
            _by_key(stored.hour_aggregates(a, b)), _by_key(load_hour_aggregates(engine, a, b))
        )
        served_any |= len(txns) > 0
    assert served_any
    assert all(len(weeks) <= 2 for weeks in stored._weeks.values())


def test_stored_weeks_sum_the_operators_usual_shares_once_per_window(engine, monkeypatch):
    """The operators' usual shares of a window are those the store sums, summed once however
    often a walk asks for them (each week of the window once); each caller gets its own copy,
    and another window is summed afresh."""
    import pipeline.detection.features.loading as loading

    pts = make_points(4)
    txns = make_transactions(pts, days=15, seed=6)
    txns.loc[txns.index[::9], "operator_id"] = None  # sales without an operator
    load_world(engine, pts, txns)
    a = pd.Timestamp(START + pd.Timedelta(days=1, hours=5)).to_pydatetime()
    b = pd.Timestamp(START + pd.Timedelta(days=12)).to_pydatetime()
    expected = loading.operator_usuals(engine, a, b)
    sums = count_calls(monkeypatch, loading, "operator_share_sums")
    stored = StoredWeeks(engine)
    first = stored.operator_usuals(a, b)
    first.loc[:, "op_usual_cash"] = -1.0  # a caller's change stays its own
    again = stored.operator_usuals(a, b)
    assert len(sums) == 2  # its two weeks, counted back from its end
    pd.testing.assert_frame_equal(again, expected, check_exact=True)
    other = stored.operator_usuals(a, pd.Timestamp(START + pd.Timedelta(days=8)).to_pydatetime())
    assert len(sums) == 3 and other["paid_n"].sum() < expected["paid_n"].sum()


def test_usual_shares_added_up_from_weeks_are_those_of_one_sum(engine, monkeypatch):
    """A walk's windows (eight weeks, or from the first data, ending at consecutive retrain
    moments) summed from their weeks give what one SQL sum over each window gives, to the
    last bit and in the same order (operators None and "" among them), and each window sums
    only the week that is new in it."""
    import pipeline.detection.features.loading as loading

    pts = make_points(5)
    txns = make_transactions(pts, days=40, seed=11)
    txns.loc[txns.index[::9], "operator_id"] = None
    txns.loc[txns.index[4::13], "operator_id"] = ""
    txns.loc[txns.index[2::17], "status"] = "refund"
    load_world(engine, pts, txns)
    first = pd.Timestamp(START + pd.Timedelta(hours=9))
    week = pd.Timedelta(weeks=1)
    windows = []
    for k in range(6):
        end = pd.Timestamp(START) + pd.Timedelta(days=15, hours=19) + k * week
        windows.append((max(end - 3 * week, first).to_pydatetime(), end.to_pydatetime()))
    expected = [loading.operator_usuals(engine, a, b) for a, b in windows]
    stored = StoredWeeks(engine)
    sums = count_calls(monkeypatch, loading, "operator_share_sums")
    for (a, b), one_sum in zip(windows, expected, strict=True):
        got = stored.operator_usuals(a, b)
        if engine.dialect.name != "sqlite":  # PostgreSQL's group order is its plan's
            got, one_sum = (
                f.sort_values(["point_id", "operator_id"]).reset_index(drop=True)
                for f in (got, one_sum)
            )
        pd.testing.assert_frame_equal(got, one_sum, check_exact=True)
        if engine.dialect.name == "sqlite":  # both kinds of missing operator were summed
            assert got["operator_id"].isna().any() and (got["operator_id"] == "").any()
    assert len(sums) == 3 + 5  # the first window's three weeks, then one new week each
    assert loading.usual_pieces(first, first) == []
