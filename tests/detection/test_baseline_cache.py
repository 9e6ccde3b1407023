"""The baseline kept between hourly runs (``features.baseline_cache``), on SQLite and
PostgreSQL: late rows that land in hour aggregates the baseline window already has (its row
count stays the same) make the next run learn the baseline again, so it scores with what is
known (point in time, nothing lost)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import and_, func, select

from pipeline.detection.features import compute_features
from pipeline.intake.ingest import ingest_frame
from pipeline.store.schema import hour_aggregates
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DAYS = 28
# An hour late in the world's span (Jakarta 15:00), scored against the usual levels of the
# weeks before the last retrain moment, as an hourly run has them.
HOUR = START + pd.Timedelta(days=26, hours=15)
USUAL_FROM, USUAL_UNTIL = START, START + pd.Timedelta(days=21)
POINT = "P03"


def _features(engine, cache_dir=None) -> pd.DataFrame:
    return compute_features(
        engine, HOUR, HOUR + pd.Timedelta(hours=1), cache_dir=cache_dir, baseline_end=USUAL_UNTIL
    )


def _baseline_files(cache_dir) -> list[str]:
    return sorted(p.name for p in cache_dir.glob("baseline-*.npz"))


def _window_rows(engine) -> int:
    h = hour_aggregates.c
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(and_(h.hour_start >= USUAL_FROM, h.hour_start < USUAL_UNTIL))
        ).scalar_one()


def _usual_revenue(features: pd.DataFrame) -> float:
    return features.set_index(["point_id", "hour_start"])["usual_rev"][(POINT, HOUR)]


def test_late_rows_in_the_baseline_window_rebuild_the_cached_baseline(engine, tmp_path):
    load_world(engine, make_points(8), make_transactions(make_points(8), days=DAYS, seed=3))
    cached = _features(engine, tmp_path)  # learns the baseline and keeps it
    kept = _baseline_files(tmp_path)
    assert len(kept) == 1
    rows_before = _window_rows(engine)
    # A device syncs late: 40 more sales in the scored hour's hour of the week, in each of the
    # three weeks of the window. Those hours already have aggregates (the point trades then),
    # so the window's row count stays the same while its usual level of that hour rises.
    weeks = [HOUR - pd.Timedelta(weeks=w) for w in (1, 2, 3)]
    assert all(USUAL_FROM <= week < USUAL_UNTIL for week in weeks)
    late = pd.DataFrame(
        {
            "point_id": POINT,
            "txn_id": [f"late-{w}-{i}" for w in range(3) for i in range(40)],
            "occurred_at": [
                (week + pd.Timedelta(seconds=60 * i + 30)).isoformat()
                for week in weeks
                for i in range(40)
            ],
            "amount": "5000",
            "payment_method": "cash",
            "status": "paid",
            "operator_id": f"{POINT}-opB",
            "payer_ref": None,
        }
    )
    assert ingest_frame(engine, late, source="api:tapbox", source_ref="synced late").accepted == 120
    assert _window_rows(engine) == rows_before
    uncached = _features(engine)
    # The late sales raise the point's usual level of the hour: a stale baseline would show.
    assert _usual_revenue(uncached) > _usual_revenue(cached)
    pd.testing.assert_frame_equal(_features(engine, tmp_path), uncached, check_exact=True)
    # Learnt again, under a new name.
    assert len(_baseline_files(tmp_path)) == 2 and set(_baseline_files(tmp_path)) > set(kept)
