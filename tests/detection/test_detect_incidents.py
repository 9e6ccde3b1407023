"""Issue 13's detection on one small seeded world (SQLite, stage level): a level shift that
starts on a regional event and runs to the end is raised within three days and stays one case;
30 voided Rp 85.000 sales read as void abuse with that money at stake; a three-hour dip with a
normal mix is no case; a day every point was closed (missing from the calendar) is no device
off; a point with about one sale an hour still has its week of 40% under-reporting raised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.casework.cases import list_anomalies, list_cases
from pipeline.detection.backfill import backfill
from pipeline.reference.calendar import Calendar
from pipeline.store import connect
from tests.helpers.detect_fixtures import (
    START,
    in_window,
    load_world,
    local_window,
    make_points,
    make_transactions,
)

# Nine weeks: the backfill scores the last one against the usual levels of the eight before it,
# where everything is planted, so the leakage is not part of "usual".
DAYS = 63
SHIFT_FROM = 57  # P06 loses a third of its sales from this day (a regional event) to the end
FESTIVAL = (START + pd.Timedelta(days=SHIFT_FROM, hours=7)).date()
VOID_HOUR = local_window(58, 15, 16)
DIP = local_window(59, 10, 13)
CLOSED_DAY = local_window(48, 0, 24)
SMALL_FROM = 52  # S00 (about one sale an hour) leaves 40% of its sales out for the last 11 days


def _aggregated_already(engine, start, end) -> None:
    """The fixture world is written with its hour aggregates."""


def _void_burst(rng) -> pd.DataFrame:
    """30 sales of Rp 85.000 rung up and voided by one operator in one hour, re-rung as tiny
    Rp 1.000 tickets (what the operator recorded instead)."""
    s, _ = VOID_HOUR
    times = s + pd.to_timedelta(np.sort(rng.integers(0, 3500, 30)), unit="s")
    common = {"point_id": "P02", "operator_id": "P02-opB", "payer_ref": None}
    voided = pd.DataFrame(
        {
            **common,
            "txn_id": [f"P02-v{i}" for i in range(30)],
            "occurred_at": times,
            "amount": 85_000,
            "payment_method": "cash",
            "status": "void",
        }
    )
    rerung = voided.assign(
        txn_id=[f"P02-r{i}" for i in range(30)],
        occurred_at=times + pd.Timedelta(seconds=20),
        amount=1_000,
        status="paid",
    )
    return pd.concat([voided, rerung], ignore_index=True)


def _plant(txns: pd.DataFrame, rng) -> pd.DataFrame:
    shift = (txns["point_id"] == "P06") & (
        txns["occurred_at"] >= START + pd.Timedelta(days=SHIFT_FROM)
    )
    txns = txns[~(shift & (rng.random(len(txns)) < 0.35))]
    dip = in_window(txns, "P05", *DIP)
    txns = txns[~(dip & (rng.random(len(txns)) < 0.4))]
    small = (txns["point_id"] == "S00") & (
        txns["occurred_at"] >= START + pd.Timedelta(days=SMALL_FROM)
    )
    txns = txns[~(small & (rng.random(len(txns)) < 0.4))]
    s, e = CLOSED_DAY
    txns = txns[~((txns["occurred_at"] >= s) & (txns["occurred_at"] < e))]
    return pd.concat([txns, _void_burst(rng)], ignore_index=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("incidents")
    engine = connect(f"sqlite:///{folder / 'world.db'}")
    pts = make_points(8)
    small = make_points(1).assign(point_id="S00", name="Parkir kecil")
    txns = make_transactions(pts, days=DAYS, seed=21)
    small_txns = make_transactions(make_points(1), days=DAYS, seed=24, scale=1 / 6)
    small_txns = small_txns.assign(
        point_id="S00",
        txn_id="S" + small_txns["txn_id"],
        operator_id=small_txns["operator_id"].str.replace("P00", "S00"),
    )
    rng = np.random.default_rng(23)
    txns = _plant(pd.concat([txns, small_txns], ignore_index=True), rng)
    load_world(engine, pd.concat([pts, small], ignore_index=True), txns)
    calendar = Calendar(regional_events={FESTIVAL: "Festival"})
    end = START + pd.Timedelta(days=DAYS)
    backfill(
        engine, folder / "models", START, end, aggregate=_aggregated_already, calendar=calendar
    )
    yield list_anomalies(engine), list_cases(engine)
    engine.dispose()


def _at(frame, point, start, end, column="hour_start"):
    hit = (frame[column] >= start) & (frame[column] < end)
    return frame[hit & (frame["point_id"] == point)]


def test_a_level_shift_from_a_holiday_is_raised_within_three_days_and_is_one_case(world):
    anomalies, cases = world
    start = START + pd.Timedelta(days=SHIFT_FROM)
    end = START + pd.Timedelta(days=DAYS)
    flags = _at(anomalies, "P06", start, end)
    assert not flags.empty, "the level shift at P06 was not raised"
    assert flags["hour_start"].min() < start + pd.Timedelta(days=3)
    # it stays raised to the end of the data, in one case (at most two)
    assert flags["hour_start"].max() >= end - pd.Timedelta(days=1)
    assert flags["case_id"].nunique() <= 2
    assert "every day for" in " ".join(flags["reasons"])
    case = cases[cases["case_id"] == flags["case_id"].iloc[-1]].iloc[0]
    assert case["kind"] == "under_reporting" and case["severity"] == "high"


def test_thirty_voids_of_rp85000_in_one_hour_are_void_abuse_with_that_money_at_stake(world):
    anomalies, cases = world
    flags = _at(anomalies, "P02", *VOID_HOUR)
    assert len(flags) == 1, flags
    flag = flags.iloc[0]
    assert flag["kind"] == "void_abuse", flag["reasons"]
    assert 2_400_000 <= flag["shortfall_rp"] <= 2_600_000
    assert flag["operators"] == "P02-opB"
    case = cases[cases["case_id"] == flag["case_id"]].iloc[0]
    assert case["kind"] == "void_abuse" and case["severity"] == "high"
    assert "Rp 2." in case["reasons"]


def test_a_three_hour_dip_with_a_normal_mix_is_not_a_case(world):
    anomalies, _ = world
    s, e = DIP
    assert _at(anomalies, "P05", s - pd.Timedelta(hours=3), e + pd.Timedelta(hours=3)).empty


def test_a_day_every_point_was_closed_is_not_device_off(world):
    anomalies, _ = world
    s, e = CLOSED_DAY
    on_day = anomalies[(anomalies["hour_start"] >= s) & (anomalies["hour_start"] < e)]
    assert on_day.empty, on_day[["point_id", "hour_start", "kind", "reasons"]]


def test_a_one_sale_an_hour_points_week_of_40pct_under_reporting_is_raised(world):
    """At 14 sales a day the CUSUM needs a week or more: in simulation (test_features_level_shift)
    about one such week in thirteen still stays within the noise; here 11 days."""
    anomalies, _ = world
    start = START + pd.Timedelta(days=SMALL_FROM)
    flags = _at(anomalies, "S00", start, START + pd.Timedelta(days=DAYS))
    assert not flags.empty, "S00's week of under-reporting was not raised"
    # Raised as the level shift, or by the pooled silence of its longer empty stretches.
    assert set(flags["kind"]) & {"under_reporting", "device_off"}, flags[["hour_start", "kind"]]
    before = _at(anomalies, "S00", START, start)
    assert before["case_id"].nunique() <= 1
