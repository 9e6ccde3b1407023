"""Regression: ``damp_of`` damped the operators' cash shortfall on holidays with the default
``FeatureConfig()`` (0.6) whatever the run was configured with."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.detection.features import FeatureConfig, compute_features
from pipeline.reference.calendar import Calendar
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions


def test_op_cash_short_on_a_holiday_is_damped_with_the_runs_config_not_the_default(engine):
    pts = make_points(5)
    txns = make_transactions(pts, days=21, seed=4, scale=0.8)
    festival = (START + pd.Timedelta(days=19, hours=7)).date()  # day 19, local date
    local = txns["occurred_at"].dt.tz_convert("Asia/Jakarta")
    # Operator A of P00 keeps the cash of the festival day's morning shift.
    skimmed = (
        (txns["point_id"] == "P00")
        & (local.dt.date == festival)
        & (txns["operator_id"] == "P00-opA")
        & (txns["payment_method"] == "cash")
    )
    load_world(engine, pts, txns[~skimmed])
    config = FeatureConfig(holiday_damping=0.2)
    end = START + pd.Timedelta(days=20)
    features = compute_features(
        engine,
        end - pd.Timedelta(days=2),
        end,
        config=config,
        calendar=Calendar(regional_events={festival: "Festival"}),
    )
    on_festival = features[features["holiday"].eq("Festival") & features["op_short_z"].gt(3)]
    assert not on_festival.empty  # the planted shortfall is there to be damped
    assert on_festival["op_cash_short"].to_numpy() == pytest.approx(
        on_festival["op_short_z"].to_numpy() * 0.2
    )
