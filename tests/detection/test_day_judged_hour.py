"""Each point's day has one judged hour: the hour in which half of its usual trade has come into
view, the first the day views read (``MIN_TODAY_SHARE``). A lasting level shift is flagged there
once a day (``quiet.shifted_day``); a backfill and the hourly run that scores the hour agree."""

from __future__ import annotations

from datetime import timedelta

from pipeline.detection.features import compute_features
from pipeline.store import connect
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DAYS = 35
SCORED = 28


def test_one_judged_hour_a_day_where_half_the_usual_day_is_in_view(tmp_path):
    pts = make_points(4, revenue_type="restaurant", district="Pantai")
    txns = make_transactions(pts, days=DAYS, seed=5, scale=0.3)
    engine = connect(f"sqlite:///{tmp_path / 'judged.db'}")
    load_world(engine, pts, txns)
    begin = START + timedelta(days=SCORED)
    frame = compute_features(engine, begin, START + timedelta(days=DAYS), baseline_end=begin)
    judged = frame[frame["day_judged_hour"].astype(bool)]
    per_day = judged.groupby(["point_id", "local_date"]).size()
    days = frame.groupby(["point_id", "local_date"]).ngroups
    # Every complete day of every point has exactly one (the scored range's first and last
    # days may be cut by the UTC range).
    assert per_day.eq(1).all() and len(per_day) >= days - 2 * len(pts)
    # Not the day's first open hour: half of a usual day is not in view an hour after opening.
    opened = frame[frame["is_open"]].groupby(["point_id", "local_date"])["hour_start"].min()
    assert (
        judged.set_index(["point_id", "local_date"])["hour_start"] > opened.reindex(per_day.index)
    ).all()
    # The hourly run that scores that hour alone says the same.
    point, day = per_day.index[len(per_day) // 2]
    hour = judged.set_index(["point_id", "local_date"]).loc[(point, day), "hour_start"]
    alone = compute_features(
        engine,
        hour.to_pydatetime(),
        (hour + timedelta(hours=1)).to_pydatetime(),
        baseline_end=begin,
    )
    assert bool(alone.set_index("point_id").loc[point, "day_judged_hour"])
    engine.dispose()
