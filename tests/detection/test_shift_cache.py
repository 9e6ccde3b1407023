"""The operators' complete days kept between hourly runs (``features.shift_cache``), on SQLite
and PostgreSQL: a run that reads them from the cache gives the same features as one that
figures them from the store, and late rows landing in one of those days are seen by the next
run (the cache is not served stale)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.detection.features import compute_features
from pipeline.intake.ingest import ingest_frame
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DAYS = 28
# Two hours of one local day (Jakarta 15:00 and 17:00, shift B), late in the world's span.
HOUR = START + pd.Timedelta(days=26, hours=15)
LATER_HOUR = HOUR + pd.Timedelta(hours=2)
POINT = "P03"
# The usual levels of the weeks before the last retrain moment, as an hourly run has them: the
# late rows below land after it.
USUAL_UNTIL = START + pd.Timedelta(days=21)


def _features(engine, hour, cache_dir=None) -> pd.DataFrame:
    return compute_features(
        engine, hour, hour + pd.Timedelta(hours=1), cache_dir=cache_dir, baseline_end=USUAL_UNTIL
    )


def _shift_files(cache_dir) -> list[str]:
    return sorted(p.name for p in cache_dir.glob("shifts-*.npz"))


def _assert_same(cached: pd.DataFrame, uncached: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(cached, uncached, check_exact=True)


def _world(engine, *, east: int = 0):
    """Eight points, the last ``east`` of them in Asia/Jayapura (two hours ahead of Jakarta:
    their local days start at another UTC hour), trading at the same local hours."""
    pts = make_points(8)
    far = pts["point_id"].isin(pts["point_id"].iloc[len(pts) - east :])
    pts.loc[far, "timezone"] = "Asia/Jayapura"
    txns = make_transactions(pts, days=DAYS, seed=3)
    ahead = txns["point_id"].isin(pts.loc[far, "point_id"])
    txns.loc[ahead, "occurred_at"] -= pd.Timedelta(hours=2)
    load_world(engine, pts, txns)


@pytest.mark.parametrize("east", [0, 3], ids=["one zone", "two zones"])
def test_a_run_from_cached_operator_days_gives_the_uncached_features(engine, tmp_path, east):
    _world(engine, east=east)
    uncached = _features(engine, HOUR)
    # The cash shortfall is there to compare: every open hour has its shift's operator.
    assert uncached["op_short_exp"].fillna(0).gt(0).sum() >= 6
    assert set(uncached["op_short_id"].dropna()) >= {f"{POINT}-opB"}
    first = _features(engine, HOUR, tmp_path)  # figures the days and keeps them
    assert len(_shift_files(tmp_path)) == 1
    _assert_same(first, uncached)
    _assert_same(_features(engine, HOUR, tmp_path), uncached)  # read from the file
    # A later hour of the same local day reads the same complete days: the same file.
    _assert_same(_features(engine, LATER_HOUR, tmp_path), _features(engine, LATER_HOUR))
    assert len(_shift_files(tmp_path)) == 1


def test_late_rows_in_a_cached_day_are_seen_by_the_next_run(engine, tmp_path):
    _world(engine)
    before = _features(engine, HOUR, tmp_path)
    shift_of = before.set_index(["point_id", "hour_start"])["op_short_id"]
    assert shift_of[(POINT, HOUR)] == f"{POINT}-opB"
    kept = _shift_files(tmp_path)
    # A device syncs late: 120 cash sales by another operator at the same local hour the day
    # before. They make that operator the shift's, so a run reading the days kept before they
    # came would name the old one.
    yesterday = HOUR - pd.Timedelta(days=1)
    late = pd.DataFrame(
        {
            "point_id": POINT,
            "txn_id": [f"late-{i}" for i in range(120)],
            "occurred_at": [
                (yesterday + pd.Timedelta(seconds=30 * i)).isoformat() for i in range(120)
            ],
            "amount": "5000",
            "payment_method": "cash",
            "status": "paid",
            "operator_id": f"{POINT}-late",
            "payer_ref": None,
        }
    )
    assert ingest_frame(engine, late, source="api:tapbox", source_ref="synced late").accepted == 120
    uncached = _features(engine, HOUR)
    assert uncached.set_index(["point_id", "hour_start"])["op_short_id"][(POINT, HOUR)] == (
        f"{POINT}-late"
    )
    _assert_same(_features(engine, HOUR, tmp_path), uncached)
    # The days figured again, under a new name; the stale file is gone.
    assert len(_shift_files(tmp_path)) == 1 and _shift_files(tmp_path) != kept
