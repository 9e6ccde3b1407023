"""The day horizons' shared-days form (``day_signals``: each view's complete days and their
peers figured once, each hour's day so far a running sum) gives the numbers of one table of
15 days per scored hour (``tests/helpers/day_tables_reference``, the first form), column for
column, on a regency built to reach every edge: three timezones (a UTC day of several views,
peers whose earlier days are other dates), big and small points, peers in district, type and
regency-wide groups, a regional event, a drop that lasts (a level shift), a week of shaved
tickets and a silent day."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

import pipeline.detection.features.assemble as assemble
import tests.helpers.day_tables_reference as reference
from pipeline.detection.features import compute_features
from pipeline.detection.features.day_signals import DAY_COLUMNS, day_signals
from pipeline.reference.calendar import Calendar
from pipeline.store import connect
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DAYS = 36
FESTIVAL = (START + timedelta(days=31, hours=7)).date()


def _regency() -> tuple[pd.DataFrame, pd.DataFrame]:
    big = make_points(6)
    small = make_points(5, revenue_type="market", district="Desa")
    small["point_id"] = [f"S{i:02d}" for i in range(len(small))]
    lone = make_points(2, revenue_type="hotel", district="Pantai")
    lone["point_id"] = [f"H{i:02d}" for i in range(len(lone))]
    pts = pd.concat([big, small, lone], ignore_index=True)
    # Three timezones: their local midnights cut each UTC day into views.
    pts.loc[[1, 4, 7], "timezone"] = "Asia/Makassar"
    pts.loc[[2, 9, 11], "timezone"] = "Asia/Jayapura"
    txns = pd.concat(
        [
            make_transactions(big, days=DAYS, seed=3),
            make_transactions(small, days=DAYS, seed=4, scale=0.08),
            make_transactions(lone, days=DAYS, seed=5, scale=0.5),
        ],
        ignore_index=True,
    )
    rng = np.random.default_rng(9)
    late = txns["occurred_at"] >= START + timedelta(days=16)
    # P00 records only 55% of its sales from day 16 (a lasting drop, longer than a snapshot); S01 60%.
    kept = txns["point_id"].map({"P00": 0.55, "S01": 0.6}).fillna(1.0)
    txns = txns[~(late & (rng.random(len(txns)) > kept))]
    # P03 shaves its tickets from day 29; P05 is silent all of day 33.
    shaved = (txns["point_id"] == "P03") & (txns["occurred_at"] >= START + timedelta(days=29))
    txns.loc[shaved, "amount"] = (txns.loc[shaved, "amount"] * 0.6).round(-2)
    day_33 = (txns["occurred_at"] >= START + timedelta(days=33)) & (
        txns["occurred_at"] < START + timedelta(days=34)
    )
    txns = txns[~(day_33 & (txns["point_id"] == "P05"))]
    return pts, txns.reset_index(drop=True)


@pytest.fixture
def day_frames(sqlite_url, monkeypatch):
    """What ``compute_features`` hands ``day_signals`` over the regency's last four days."""
    engine = connect(sqlite_url)
    pts, txns = _regency()
    load_world(engine, pts, txns)
    captured = []
    real = assemble.day_signals

    def capture(frame, slots, scales, config, *, scored_from=None):
        captured.append((frame.copy(), slots, scales, config, scored_from))
        return real(frame, slots, scales, config, scored_from=scored_from)

    monkeypatch.setattr(assemble, "day_signals", capture)
    end = START + timedelta(days=DAYS)
    compute_features(
        engine,
        end - timedelta(days=4, hours=5),
        end,
        calendar=Calendar(regional_events={FESTIVAL: "Festival"}),
        # Usual levels from before the drops, as a live run would have them.
        baseline_end=START + timedelta(days=14),
    )
    engine.dispose()
    return captured


def test_shared_complete_days_give_the_numbers_of_one_table_per_hour(day_frames):
    assert day_frames
    for frame, slots, scales, config, scored_from in day_frames:
        for begin in (scored_from, None):
            fast = day_signals(frame.copy(), slots, scales, config, scored_from=begin)
            slow = reference.day_signals(frame.copy(), slots, scales, config, scored_from=begin)
            for column in DAY_COLUMNS:
                np.testing.assert_allclose(
                    fast[column].to_numpy(dtype=float),
                    slow[column].to_numpy(dtype=float),
                    rtol=1e-9,
                    atol=1e-9,
                    equal_nan=True,
                    err_msg=column,
                )
            # The regency reaches what it was built for: the comparison is not of zeros.
            views = fast.groupby("hour_start")["local_date"].nunique()
            assert views.max() >= 2  # moments whose points are on different local dates
            assert fast["level_shift"].max() >= 3
            assert fast["day_drop"].max() >= 3
            assert fast["ticket_day_drop"].max() >= 3
            assert fast["small_shortfall"].max() > 0
            assert fast.loc[fast["holiday"].notna(), "day_rev"].notna().any()
            after = fast["hour_start"] >= (begin or START)
            traded = fast["txn_count"] + fast["void_count"] + fast["refund_count"] > 0
            figured = fast["day_rev"].notna()
            assert figured[after & (fast["is_open"] | traded)].all()
            assert not figured[~after].any()
