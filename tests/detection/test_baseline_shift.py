"""A drop still under way at the baseline's end is kept out of the usual levels
(``baseline_shift``): against the point's own earlier days and its type's peers, never on
ordinary noise, never when the peers fell as well."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.casework import audit
from pipeline.casework.cases import list_cases, record_flags
from pipeline.casework.users import User
from pipeline.detection.features import compute_features
from pipeline.detection.features.baseline_shift import tail_drops
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DATES = pd.date_range("2025-11-24", periods=56, freq="D")


def _days(points: int, sales: float, spread: float, seed: int) -> pd.DataFrame:
    """Eight weeks of complete days at ``points`` restaurants: Poisson sales around a level that
    varies ``spread`` (lognormal) from day to day, with a weekend twice as busy."""
    rng = np.random.default_rng(seed)
    weekend = np.where(DATES.dayofweek >= 5, 2.0, 1.0)
    level = sales * weekend[None, :] * rng.lognormal(0.0, spread, (points, len(DATES)))
    return pd.DataFrame(
        {
            "pos": np.repeat(np.arange(points), len(DATES)),
            "local_date": np.tile(DATES.to_numpy().astype("datetime64[D]"), points),
            "cnt": rng.poisson(level).ravel(),
            "revenue_type": "restaurant",
        }
    )


def _lower(days: pd.DataFrame, pos, since: str, by: float) -> pd.DataFrame:
    out = days.copy()
    hit = out["pos"].isin(np.atleast_1d(pos)) & (out["local_date"] >= np.datetime64(since))
    out.loc[hit, "cnt"] = np.round(out.loc[hit, "cnt"] * (1 - by)).astype(int)
    return out


@pytest.mark.parametrize("since", ["2026-01-01", "2025-12-25", "2026-01-10"])
def test_a_third_of_the_sales_gone_since_some_day_is_kept_out_from_that_day(since):
    days = _lower(_days(points=10, sales=60, spread=0.15, seed=1), 3, since, by=1 / 3)
    found = tail_drops(days)
    assert list(found.index) == [3]
    # The tail begins at the drop, give or take the few days noise may move the strongest
    # split by (a day or two of the drop left in, or of ordinary days kept out).
    assert abs((found[3] - pd.Timestamp(since)).days) <= 3


def test_a_drop_the_peers_share_is_not_kept_out():
    # A regional downturn (a flood, an event elsewhere): every restaurant a third down.
    days = _lower(_days(points=10, sales=60, spread=0.15, seed=2), range(10), "2026-01-01", 1 / 3)
    assert tail_drops(days).empty


@pytest.mark.parametrize("seed", range(5))
def test_ordinary_days_keep_every_point_usual(seed):
    # 40 points, from quiet (6 sales a day) to busy, days varying 10-30%.
    rng = np.random.default_rng(100 + seed)
    parts = []
    for part, sales in enumerate((6.0, 20.0, 60.0, 200.0)):
        days = _days(points=10, sales=sales, spread=float(rng.uniform(0.1, 0.3)), seed=seed)
        parts.append(days.assign(pos=days["pos"] + 10 * part))
    assert tail_drops(pd.concat(parts, ignore_index=True)).empty


def test_a_short_or_shallow_dip_at_the_end_is_left_to_the_day_signals():
    base = _days(points=10, sales=60, spread=0.15, seed=3)
    assert tail_drops(_lower(base, 4, "2026-01-17", by=0.5)).empty  # the last two days
    assert tail_drops(_lower(base, 4, "2026-01-01", by=0.08)).empty  # 8% down: ordinary


def test_too_short_a_history_says_nothing():
    days = _days(points=10, sales=60, spread=0.15, seed=4)
    days = days[days["local_date"] >= np.datetime64("2026-01-05")]  # 14 days: no head and tail
    assert tail_drops(_lower(days, 2, "2026-01-12", by=0.5)).empty


# End to end through the features (SQLite and PostgreSQL): six weeks of eight car parks, one of
# them losing 40% of its sales over the last two; the seventh week's first day is scored with
# the usual levels of the six weeks before it.
WEEKS = 6
LOST = 0.4


def _drop_world(engine) -> datetime:
    pts = make_points(8)
    txns = make_transactions(pts, days=7 * WEEKS + 1, seed=7)
    rng = np.random.default_rng(7)
    dropped = (txns["point_id"] == "P03") & (
        txns["occurred_at"] >= pd.Timestamp(START + timedelta(weeks=WEEKS - 2))
    )
    load_world(engine, pts, txns[~(dropped & (rng.random(len(txns)) < LOST))])
    return START + timedelta(weeks=WEEKS)


def _scored_day(engine, scored: datetime) -> pd.DataFrame:
    frame = compute_features(engine, scored, scored + timedelta(days=1), baseline_end=scored)
    return frame[frame["point_id"] == "P03"]


def test_the_drop_in_the_baseline_tail_is_not_learnt_until_an_auditor_dismisses_it(engine):
    scored = _drop_world(engine)
    kept_out = _scored_day(engine, scored)
    # Against the usual of the four weeks before the drop the day reads about what it lost
    # (0.70 here; 0.81 when the drop's two weeks are learnt as usual), and the CUSUM is far
    # over its line (16 units; 3.4 when learnt) ...
    assert kept_out["day_ratio"].iloc[-1] < 0.75
    assert kept_out["level_shift"].iloc[-1] > 10

    # ... until an auditor looks at the drop and calls it ordinary (a road closed, say): then
    # its two weeks are usual, and the same day reads far less down.
    drop_hours = pd.date_range(
        START + timedelta(weeks=WEEKS - 2), scored, freq="h", tz="UTC", inclusive="left"
    )
    flags = pd.DataFrame(
        {
            "point_id": "P03",
            "hour_start": drop_hours,
            "score": 0.6,
            "severity": "medium",
            "kind": "under_reporting",
            "evidence": "volume",
            "reasons": "sales 40% below the usual",
            "shortfall_rp": 10_000,
            "operators": None,
        }
    )
    record_flags(engine, flags, drop_hours[0], scored, model_version="m-test")
    (case_id,) = list_cases(engine)["case_id"]
    audit.decide(
        engine,
        int(case_id),
        User("demo", "auditor"),
        "false_alarm",
        "road works",
        false_alarm_days=7,
    )
    learnt = _scored_day(engine, scored)
    assert learnt["day_ratio"].iloc[-1] > 0.78
    assert learnt["level_shift"].iloc[-1] < 5
