"""Issue 13 parts 4 and 5, end to end (walk-forward backfill on SQLite): a small point's device
that goes silent for three hours while its peers trade is raised as a device off; the same three
hours silent at every point (a local event the calendar does not know) are not.

The small point sells about one sale an open hour, most of them at lunch (three an hour from
11:00 to 14:00, half a sale in its other open hours). A silence is judged on the sales its hours
usually hold, so three silent lunch hours (about nine sales usual: a chance of e^-9) are a device
off, while three silent hours where three sales were usual are a chance of 0.05, what such a
point shows now and then (``hour_signals.silence``; README "Quality")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.detection.backfill import backfill
from pipeline.detection.features.small_points import SMALL_HOURLY
from pipeline.store import connect
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

DAYS = 42  # four weeks of history, the fifth and sixth scored (walk-forward)
LUNCH, LUNCH_RATE, OTHER_RATE = (11, 14), 3.0, 0.5  # local hours, sales an hour
DEVICE_OFF_DAY = 30  # Wed 1 April: the small point alone is silent over lunch
LOCAL_EVENT_DAY = 37  # Wed 8 April: every point is silent over lunch


def _small_point_sales(days: int, seed: int) -> pd.DataFrame:
    """Poisson sales of S00: ``LUNCH_RATE`` an hour at lunch, ``OTHER_RATE`` in its other open
    hours (07:00-21:00, as its registry row says)."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range(START, periods=days * 24, freq="h")
    local = hours.tz_convert("Asia/Jakarta").hour
    rate = np.where(
        (local >= LUNCH[0]) & (local < LUNCH[1]),
        LUNCH_RATE,
        np.where((local >= 7) & (local < 21), OTHER_RATE, 0.0),
    )
    hour_of = np.repeat(np.arange(len(hours)), rng.poisson(rate))
    n = len(hour_of)
    cash = rng.random(n) < 0.6
    return pd.DataFrame(
        {
            "point_id": "S00",
            "txn_id": [f"S00-{i}" for i in range(n)],
            "occurred_at": hours[hour_of] + pd.to_timedelta(rng.integers(0, 3600, n), unit="s"),
            "amount": rng.choice([5000, 10000, 15000], n),
            "payment_method": np.where(cash, "cash", "qris"),
            "status": "paid",
            "operator_id": "S00-opA",
            "payer_ref": np.where(
                cash, None, np.char.add("w", rng.integers(0, 10**7, n).astype(str))
            ),
        }
    )


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The world after a walk-forward backfill: (anomalies, cases)."""
    folder = tmp_path_factory.mktemp("small-silence")
    engine = connect(f"sqlite:///{folder / 'world.db'}")
    peers = make_points(8)
    small = make_points(1).assign(point_id="S00", name="Warung kecil")
    txns = pd.concat(
        [make_transactions(peers, days=DAYS, seed=3), _small_point_sales(DAYS, seed=5)],
        ignore_index=True,
    )
    open_hours = 14 * DAYS
    assert (txns["point_id"] == "S00").sum() / open_hours < 1.2 < SMALL_HOURLY
    s, e = local_window(DEVICE_OFF_DAY, *LUNCH)
    txns = txns[~in_window(txns, "S00", s, e)]
    s, e = local_window(LOCAL_EVENT_DAY, *LUNCH)
    txns = txns[~((txns["occurred_at"] >= s) & (txns["occurred_at"] < e))]
    load_world(engine, pd.concat([peers, small], ignore_index=True), txns)
    backfill(
        engine,
        folder / "models",
        START,
        START + pd.Timedelta(days=DAYS),
        aggregate=lambda *_: None,  # load_world wrote the hour aggregates
    )
    yield list_anomalies(engine), list_cases(engine)
    engine.dispose()


def _in(frame: pd.DataFrame, column: str, start, end) -> pd.DataFrame:
    return frame[(frame[column] >= start) & (frame[column] < end)]


@pytest.mark.slow
def test_a_small_points_silent_busy_hours_with_peers_trading_are_a_device_off(scored):
    anomalies, cases = scored
    s, e = local_window(DEVICE_OFF_DAY, *LUNCH)
    flags = _in(anomalies[anomalies["point_id"] == "S00"], "hour_start", s, e)
    assert "device_off" in set(flags["kind"])
    # Device evidence opens a case at once (casework.incidents), on the point and the day.
    raised = _in(cases[cases["point_id"] == "S00"], "start_at", s, e + pd.Timedelta(hours=1))
    assert len(raised) == 1 and "device_off" in raised["kind"].iloc[0]


@pytest.mark.slow
def test_the_same_silence_at_every_point_is_no_device_off(scored):
    """Every peer silent too: closed with them (issue 13 part 4), not a device switched off."""
    anomalies, cases = scored
    s, e = local_window(LOCAL_EVENT_DAY, *LUNCH)
    assert _in(anomalies, "hour_start", s, e).empty
    assert _in(cases, "start_at", s, e).empty
