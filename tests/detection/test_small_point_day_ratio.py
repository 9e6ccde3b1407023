"""A small point's ordinary day reads as usual: its day so far holds its sales of every hour,
the same hours its usual whole day is learnt from.

At a fraction of a sale an hour most of a small point's hour-of-week slots have a usual count
of nil (a trimmed mean of mostly empty weeks), yet a good part of its sales falls in them. When
the day's figures left those hours out while its usual day kept them, a hotel of half a sale an
hour read 0.65-0.75 of usual on every ordinary day (evaluation seed 6: 0.54-0.72 at the five
smallest points), and its peers, as small and as biased, had to cancel it."""

from __future__ import annotations

from datetime import timedelta

from pipeline.detection.features import compute_features
from pipeline.store import connect
from tests.helpers.detect_fixtures import START, load_world, make_points, make_transactions

DAYS = 42
SCORED = 35  # the last week scored, its usual levels learnt from the five weeks before


def test_an_ordinary_day_at_a_point_of_a_fraction_of_a_sale_an_hour_reads_as_usual(tmp_path):
    pts = make_points(4, revenue_type="hotel", district="Pantai")
    # 0.04-0.07 x the profile: 0.2-1.3 sales in an open hour, about 6-10 a day.
    txns = make_transactions(pts, days=DAYS, seed=11, scale=0.07)
    engine = connect(f"sqlite:///{tmp_path / 'small.db'}")
    load_world(engine, pts, txns)
    begin = START + timedelta(days=SCORED)
    frame = compute_features(engine, begin, START + timedelta(days=DAYS), baseline_end=begin)
    # Each point's complete days: the day ratio at its last scored hour.
    last = frame.sort_values("hour_start").groupby(["point_id", "local_date"]).tail(1)
    assert len(last) >= 4 * 6
    sales = last.groupby("point_id")["day_rev"].sum()
    usual = last.groupby("point_id")["day_usual"].sum()
    ratio = sales / usual
    # Over a week of 6-10 sales a day the ratio of sums is within about 15% of 1 by chance.
    assert ratio.between(0.8, 1.25).all(), ratio.round(2).to_dict()
    assert abs(ratio.mean() - 1) < 0.12, ratio.round(2).to_dict()
    engine.dispose()
