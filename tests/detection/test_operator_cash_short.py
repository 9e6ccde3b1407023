"""An operator's cash over their last working days (``op_cash_short``) counts only while their
day itself is clearly short: a slack day after a real shortfall is not more of it."""

from __future__ import annotations

import pandas as pd

from pipeline.detection.features.operator_signals import _shortest_cash_run

TICKET = 10_000.0


def _run(today_tickets: float) -> pd.Series:
    """One operator's day of 100 usual cash tickets after four working days of 80 of 100."""
    day = {"point_id": "P00", "operator_id": "P00-opA", "local_date": pd.Timestamp("2026-03-09")}
    so_far = pd.DataFrame(
        [
            {
                **day,
                "obs": today_tickets * TICKET,
                "exp": 100 * TICKET,
                "point_ticket": TICKET,
                "s_rev": 1.0,
                "phi_day": 0.1,
            }
        ]
    )
    earlier = pd.DataFrame(
        [
            {
                **day,
                "obs_2": 160 * TICKET,
                "exp_2": 200 * TICKET,
                "days_2": 2,
                "obs_4": 320 * TICKET,
                "exp_4": 400 * TICKET,
                "days_4": 4,
            }
        ]
    )
    return _shortest_cash_run(so_far, earlier).iloc[0]


def test_a_day_a_little_short_after_short_days_is_judged_on_its_own():
    row = _run(88)
    # Short by more than one noise unit, less than ``DAY_SHORT``: the four days before do not count.
    assert 1.0 < row["op_short_z"] < 1.5
    assert row["op_short_days"] == 1


def test_a_day_clearly_short_carries_the_days_before_it():
    row = _run(75)
    assert row["op_short_days"] == 5
    assert row["op_short_z"] >= 3.0
