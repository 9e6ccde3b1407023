"""The simulator: deterministic, feed-format files, and every planted pattern really in the data."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import UnusableInputError
from pipeline.reference.points import parse_registry
from pipeline.testbed.simulator import FEED_COLUMNS, LEAKAGE_KINDS, read_labels, simulate

JAKARTA = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The demo-sized run: 40 points x 8 weeks, seed 7."""
    out = tmp_path_factory.mktemp("sample")
    manifest = simulate(out)
    feeds = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in manifest.feeds])
    feeds = feeds.reset_index(drop=True)
    good = feeds[~feeds["txn_id"].str.contains("BAD")].copy()
    good["at"] = pd.to_datetime(good["occurred_at"], format="ISO8601", utc=True, errors="coerce")
    good = good[good["at"].notna() & (good["at"].dt.year < 2090)]
    good["amount"] = good["amount"].astype(int)
    good = good.drop_duplicates(["point_id", "txn_id"], keep="first")
    return manifest, feeds, good, read_labels(manifest.labels_csv)


def _digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.csv")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_same_seed_writes_the_same_files_and_another_seed_does_not(tmp_path):
    a = simulate(tmp_path / "a", points=8, weeks=5, seed=3)
    b = simulate(tmp_path / "b", points=8, weeks=5, seed=3)
    c = simulate(tmp_path / "c", points=8, weeks=5, seed=4)
    assert _digest(a.out_dir) == _digest(b.out_dir)
    assert _digest(a.out_dir) != _digest(c.out_dir)


def test_feeds_are_in_the_feed_format(sample):
    manifest, feeds, good, _ = sample
    assert len(manifest.feeds) == 56  # one file per local day
    assert list(feeds.columns) == list(FEED_COLUMNS)
    assert len(feeds) == manifest.rows
    assert (good["occurred_at"].str.endswith("+07:00")).all()
    assert set(good["payment_method"]) <= {"cash", "qris", "card", "transfer", "ewallet"}
    assert set(good["status"]) == {"paid", "void", "refund"}
    assert (good["amount"] >= 0).all()
    # txn_id is a receipt number: unique within a point once resends are set aside.
    clean = feeds[~feeds["txn_id"].str.contains("BAD")]
    assert clean.duplicated(["point_id", "txn_id"]).sum() == 2  # the duplicate and the conflict
    # Non-cash payments carry a payer reference, cash never does.
    cash = good["payment_method"] == "cash"
    assert (good.loc[cash, "payer_ref"] == "").all()
    assert (good.loc[~cash, "payer_ref"].str.startswith("py_")).all()
    assert good["operator_id"].ne("").all()


def test_registry_loads_and_points_differ_in_size(sample):
    manifest, _, good, _ = sample
    registry = parse_registry(manifest.points_csv)
    assert len(registry) == 40
    assert {r["revenue_type"] for r in registry} >= {
        "parking",
        "market",
        "restaurant_tax",
        "hotel_tax",
        "entertainment_tax",
    }
    per_point = good.groupby("point_id").size()
    assert per_point.max() > 10 * per_point.median() / 2 and per_point.max() > 8 * per_point.min()


def test_bad_rows_are_there(sample):
    manifest, feeds, _, _ = sample
    assert set(manifest.bad_rows) == {
        "negative_amount",
        "unknown_point",
        "bad_method",
        "unparseable_time",
        "future_time",
        "duplicate_resend",
        "conflicting_resend",
    }
    assert (feeds["amount"].str.startswith("-")).sum() == 1
    assert (feeds["point_id"] == "XXX-9999").sum() == 1
    assert (feeds["payment_method"] == "bitcoin").sum() == 1
    times = pd.to_datetime(feeds["occurred_at"], format="ISO8601", utc=True, errors="coerce")
    assert times.isna().sum() == 1
    assert (times > pd.Timestamp("2090-01-01", tz="UTC")).sum() == 1
    resent = feeds[feeds.duplicated(["point_id", "txn_id"], keep=False)]
    assert len(resent) == 4
    assert resent.groupby("txn_id")["amount"].nunique().sort_values().tolist() == [1, 2]


def test_every_kind_is_labelled_after_the_clean_weeks(sample):
    manifest, _, _, labels = sample
    leakage = labels[labels["kind"].isin(LEAKAGE_KINDS)]
    # Two of each kind, and in the varied scenario two more under-reportings that run to the end
    # of the data (one from the public holiday, one creeping in).
    assert leakage["kind"].value_counts().to_dict() == {
        **dict.fromkeys(LEAKAGE_KINDS, 2),
        "under_reporting": 4,
    }
    assert (leakage["start_utc"] >= pd.Timestamp(manifest.start + timedelta(weeks=4))).all()
    assert (leakage["end_utc"] <= pd.Timestamp(manifest.end)).all()
    assert {"holiday", "closure", "rain", "dip", "regional"} <= set(labels["kind"])
    to_end = leakage[leakage["end_utc"] > pd.Timestamp(manifest.end) - pd.Timedelta(days=1)]
    assert to_end["note"].str.contains("public holiday").any()
    assert (labels.loc[labels["kind"] == "holiday", "note"].str.contains("Christmas")).all()
    closures = pd.read_csv(manifest.closures_csv)
    assert len(closures) == 1
    assert closures["point_id"].iloc[0] in set(labels.loc[labels["kind"] == "closure", "point_id"])


def _inside(frame, label):
    return frame[
        (frame["point_id"] == label.point_id)
        & (frame["at"] >= label.start_utc)
        & (frame["at"] < label.end_utc)
    ]


def _same_hours_week_before(frame, label, weeks=1):
    shift = pd.Timedelta(weeks=weeks)
    return frame[
        (frame["point_id"] == label.point_id)
        & (frame["at"] >= label.start_utc - shift)
        & (frame["at"] < label.end_utc - shift)
    ]


def _labels(labels, kind):
    return list(labels[labels["kind"] == kind].itertuples())


def test_device_off_hours_and_closures_have_no_rows(sample):
    _, _, good, labels = sample
    for label in _labels(labels, "device_off") + _labels(labels, "closure"):
        assert len(_inside(good, label)) == 0, label
        assert len(_same_hours_week_before(good, label)) > 0, label


def test_under_reporting_drops_recorded_revenue(sample):
    _, _, good, labels = sample
    for label in _labels(labels, "under_reporting"):
        now = _inside(good, label)
        before = _same_hours_week_before(good, label, weeks=2)
        paid = lambda f: f.loc[f["status"] == "paid", "amount"].sum()  # noqa: E731
        # Creeping under-reporting averages half its final share over the window.
        share = 0.9 if "creeping" in label.note else 0.75
        assert paid(now) < share * paid(before), label


def test_cash_skimming_lowers_the_operators_cash_sales_and_share(sample):
    _, _, good, labels = sample
    for label in _labels(labels, "cash_skimming"):

        def sales(frame, label=label):
            mine = frame[(frame["operator_id"] == label.operator_id) & (frame["status"] == "paid")]
            cash = mine["payment_method"] == "cash"
            return cash.sum(), (~cash).sum(), cash.mean()

        cash_now, noncash_now, share_now = sales(_inside(good, label))
        cash_before, noncash_before, share_before = sales(
            _same_hours_week_before(good, label, weeks=2)
        )
        assert cash_now < 0.6 * cash_before, label
        assert share_now < share_before - 0.05, label
        assert noncash_now > 0.5 * noncash_before  # non-cash sales keep flowing


def test_void_abuse_raises_voids_near_shift_end_and_cash_refunds(sample):
    _, _, good, labels = sample
    for label in _labels(labels, "void_abuse"):
        now = _inside(good, label)
        mine = now[now["operator_id"] == label.operator_id]
        before = _same_hours_week_before(good, label, weeks=2)
        before = before[before["operator_id"] == label.operator_id]
        assert (mine["status"] == "void").mean() > 3 * max(
            (before["status"] == "void").mean(), 0.01
        )
        assert ((mine["status"] == "refund") & (mine["payment_method"] == "cash")).sum() >= 2
        # Voids cluster in the last hour of the operator's shift on each day.
        voids = mine[mine["status"] == "void"]
        shift_end_hour = label.end_utc.hour
        assert (voids["at"].dt.hour == (shift_end_hour - 1) % 24).mean() > 0.6


def test_ticket_shaving_lowers_average_ticket_not_counts(sample):
    _, _, good, labels = sample
    for label in _labels(labels, "ticket_shaving"):
        now = _inside(good, label)
        before = _same_hours_week_before(good, label, weeks=2)
        assert now["amount"].mean() < 0.8 * before["amount"].mean(), label
        assert 0.6 < len(now) / len(before) < 1.6, label


def test_split_transactions_are_bursts_from_one_payer(sample):
    _, _, good, labels = sample
    for label in _labels(labels, "split_transactions"):
        now = _inside(good, label)
        payers = now.loc[now["payer_ref"] != "", "payer_ref"].value_counts()
        assert payers.iloc[0] >= 30
        # (cash sales have no payer: at a cash-heavy point "" is the commonest payer_ref)
        payer = payers.index[0]
        assert now.loc[now["payer_ref"] == payer, "amount"].max() <= 3000
        # That payer never pays this point outside the window.
        assert (
            good.loc[good["point_id"] == label.point_id, "payer_ref"] == payer
        ).sum() == payers.iloc[0]


def test_holiday_moves_all_points_of_a_type_together(sample):
    _, _, good, labels = sample
    registry = pd.DataFrame(parse_registry(sample[0].points_csv))[["point_id", "revenue_type"]]
    holiday = _labels(labels, "holiday")[0]
    frame = good.merge(registry, on="point_id")
    window = (frame["at"] >= holiday.start_utc) & (frame["at"] < holiday.end_utc)
    week_before = (frame["at"] >= holiday.start_utc - pd.Timedelta(weeks=1)) & (
        frame["at"] < holiday.end_utc - pd.Timedelta(weeks=1)
    )
    on = frame[window].groupby("revenue_type").size()
    off = frame[week_before].groupby("revenue_type").size()
    assert on["market"] < 0.7 * off["market"]
    assert on["parking"] < 0.8 * off["parking"]
    assert on["entertainment_tax"] > 1.1 * off["entertainment_tax"]


def test_rain_dips_parking_for_hours(sample):
    _, _, good, labels = sample
    rain = labels[labels["kind"] == "rain"]
    parking = rain[rain["point_id"].str.startswith("PKR")]
    during = sum(len(_inside(good, r)) for r in parking.itertuples())
    before = sum(len(_same_hours_week_before(good, r)) for r in parking.itertuples())
    assert during < 0.6 * before


def test_unusable_arguments_are_refused(tmp_path):
    with pytest.raises(UnusableInputError, match="no timezone"):
        simulate(tmp_path, start=datetime(2025, 1, 6))
    with pytest.raises(UnusableInputError, match="split"):
        simulate(tmp_path, split="hour")


def test_one_big_file_and_week_files(tmp_path):
    one = simulate(tmp_path / "one", points=5, weeks=2, split="none", leakage=False, bad_rows=False)
    weekly = simulate(
        tmp_path / "week",
        points=5,
        weeks=2,
        split="week",
        leakage=False,
        bad_rows=False,
        start=datetime(2025, 6, 2, tzinfo=JAKARTA),
    )
    assert [p.name for p in one.feeds] == ["all.csv"]
    assert [p.name for p in weekly.feeds] == ["week-2025-06-02.csv", "week-2025-06-09.csv"]
    assert len(pd.read_csv(one.feeds[0])) == one.rows == one.transactions
    assert np.isclose(one.rows, weekly.rows, rtol=0.5)


def test_simulate_command_writes_a_sample(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(
        app, ["simulate", "--out", str(tmp_path), "--points", "6", "--weeks", "1", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "6 titik" in result.output
    assert len(list((tmp_path / "feeds").glob("day-*.csv"))) == 7
    assert (tmp_path / "labels.csv").exists() and (tmp_path / "closures.csv").exists()


def test_target_rows_sizes_the_feeds(tmp_path):
    manifest = simulate(
        tmp_path,
        points=30,
        days=14,
        target_rows=20_000,
        split="none",
        leakage=False,
        bad_rows=False,
    )
    assert 0.9 * 20_000 < manifest.rows < 1.1 * 20_000


def test_classic_scenario_plants_what_the_simulator_planted_before(tmp_path):
    """The older tests' and the demo's world: two of each kind, no dips, no regional day."""
    manifest = simulate(tmp_path, points=12, weeks=6, seed=5, scenario="classic", split="none")
    labels = read_labels(manifest.labels_csv)
    leakage = labels[labels["kind"].isin(LEAKAGE_KINDS)]
    assert set(leakage["kind"].value_counts()) == {1}
    assert not {"dip", "regional"} & set(labels["kind"])


def test_varied_regional_day_closes_every_levy_point_and_is_not_in_the_calendar(sample):
    manifest, _, good, labels = sample
    regional = labels[labels["kind"] == "regional"]
    assert regional["start_utc"].nunique() == 1
    day = regional["start_utc"].iloc[0]
    calendar = pd.read_csv(manifest.calendar_csv)
    assert day.tz_convert(JAKARTA).date().isoformat() not in set(calendar["date"])
    points = pd.read_csv(manifest.points_csv)
    levy = set(points.loc[points["revenue_type"].isin(["parking", "market"]), "point_id"])
    assert set(regional["point_id"]) == levy
    inside = good[(good["at"] >= day) & (good["at"] < day + pd.Timedelta(days=1))]
    week_before = good[
        (good["at"] >= day - pd.Timedelta(days=7)) & (good["at"] < day - pd.Timedelta(days=6))
    ]
    assert inside["point_id"].isin(levy).sum() < 0.15 * week_before["point_id"].isin(levy).sum()


def test_missing_sales_say_how_detectable_they_were(sample):
    """The planter's reading of each event of missing sales: the best the data allows."""
    _, _, good, labels = sample
    volume = labels[labels["kind"].isin(["under_reporting", "device_off"])]
    assert volume["detectability"].notna().all() and (volume["detectability"] >= 0).all()
    assert labels.loc[~labels.index.isin(volume.index), "detectability"].isna().all()
    # Days of a third of the sales gone at an ordinary point are far beyond noise.
    assert volume.loc[volume["kind"] == "under_reporting", "detectability"].min() > 3


def test_detectability_grows_with_what_was_due_and_what_the_history_holds():
    from pipeline.testbed.simulator.planting import detectability

    history = np.full(28, 24.0)  # four clean weeks of a sale an hour
    # Three silent hours where about three sales were due: P(0) = 0.05, under 2 units.
    assert detectability(np.array([3.0]), 3, history) == pytest.approx(1.6, abs=0.1)
    assert detectability(np.array([1.0]), 1, history) < 0.5
    # A third of the sales gone for a week at 24 a day: 56 of 168 against a spread of ~17
    # (counting, the day-to-day spread, and the level's own error from 672 sales).
    week = detectability(np.full(7, 24.0), 56, history)
    assert 3 < week < 4
    # ... fewer with a shorter history to learn the level from, more with a longer window.
    assert detectability(np.full(7, 24.0), 56, history[:7]) < week
    assert detectability(np.full(14, 24.0), 112, history) > week
    assert detectability(np.zeros(3), 0, history) == 0.0
