"""The evaluation metrics on small hand-made labels and flags, where the answer is known."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.testbed.evaluation import (
    REPORT_SEEDS,
    TUNE_SEEDS,
    SeedRun,
    case_metrics,
    event_recall,
    normal_point_hours,
    point_hour_precision,
    quiet_flags,
    recall_by_kind,
    score,
    seed_use,
    summarise,
)

T = pd.Timestamp


def _labels(*rows):
    frame = pd.DataFrame(rows, columns=["point_id", "kind", "start_utc", "end_utc"])
    frame["start_utc"] = pd.to_datetime(frame["start_utc"], utc=True)
    frame["end_utc"] = pd.to_datetime(frame["end_utc"], utc=True)
    frame["operator_id"] = ""
    frame["note"] = ""
    return frame


def _flags(*rows):
    frame = pd.DataFrame(rows, columns=["point_id", "hour_start"])
    frame["hour_start"] = pd.to_datetime(frame["hour_start"], utc=True)
    return frame


LABELS = _labels(
    ("A", "device_off", "2026-01-10 03:00", "2026-01-10 06:00"),
    ("B", "cash_skimming", "2026-01-11 02:00", "2026-01-13 09:00"),
    ("C", "void_abuse", "2026-01-12 00:00", "2026-01-12 08:00"),
    ("A", "holiday", "2026-01-14 17:00", "2026-01-15 17:00"),
    ("B", "holiday", "2026-01-14 17:00", "2026-01-15 17:00"),
    ("C", "closure", "2026-01-16 17:00", "2026-01-17 17:00"),
    ("A", "rain", "2026-01-16 02:00", "2026-01-16 05:00"),
)


def test_an_event_is_caught_by_an_overlapping_flag_of_the_same_point_only():
    flags = _flags(
        ("A", "2026-01-10 05:00"),  # last hour of A's device_off: caught
        ("C", "2026-01-11 02:00"),  # C, but a day early: not C's event; B's hours are not C's
        ("A", "2026-01-11 03:00"),  # A at B's time: does not catch B
    )
    events = event_recall(LABELS, flags)
    assert events.set_index("kind")["caught"].to_dict() == {
        "device_off": True,
        "cash_skimming": False,
        "void_abuse": False,
    }
    assert recall_by_kind(events) == {"device_off": 1.0, "cash_skimming": 0.0, "void_abuse": 0.0}


def test_kind_named_needs_an_overlapping_flag_with_the_events_kind():
    flags = _flags(("A", "2026-01-10 04:00"), ("B", "2026-01-12 04:00"), ("C", "2026-01-12 04:00"))
    flags["kind"] = ["under_reporting", "cash_skimming", "device_off"]
    events = event_recall(LABELS, flags).set_index("kind")
    assert events["caught"].to_dict() == dict.fromkeys(events.index, True)
    assert events["kind_named"].to_dict() == {
        "device_off": False,
        "cash_skimming": True,
        "void_abuse": False,
    }


def test_a_flag_ending_exactly_at_the_window_start_does_not_catch_it():
    assert not event_recall(LABELS, _flags(("A", "2026-01-10 02:00")))["caught"].iloc[0]
    assert event_recall(LABELS, _flags(("A", "2026-01-10 02:30")))["caught"].iloc[0]


def test_precision_pads_windows_by_one_hour_and_no_more():
    flags = _flags(
        ("A", "2026-01-10 04:00"),  # inside
        ("A", "2026-01-10 06:00"),  # the hour right after: inside the 1h pad
        ("A", "2026-01-10 07:00"),  # two hours after: false
        ("A", "2026-01-10 01:00"),  # [01:00, 02:00) touches the padded start 02:00: false
        ("B", "2026-01-10 04:00"),  # another point's window: false
    )
    assert point_hour_precision(LABELS, flags) == pytest.approx(2 / 5)
    assert point_hour_precision(LABELS, flags.iloc[:0]) is None


def test_quiet_flags_count_holiday_closure_and_rain_hours_that_are_not_leakage():
    flags = _flags(
        ("A", "2026-01-15 01:00"),
        ("B", "2026-01-15 02:00"),
        ("B", "2026-01-15 03:00"),  # three holiday flags
        ("C", "2026-01-17 00:00"),  # one closure flag
        ("A", "2026-01-16 03:00"),  # one rain flag
        ("C", "2026-01-15 03:00"),  # C has no holiday label in this set: not counted
    )
    assert quiet_flags(LABELS, flags) == {
        "holiday": 3,
        "closure": 1,
        "rain": 0 + 1,
        "dip": 0,
        "regional": 0,
    }


def test_a_holiday_flag_inside_a_leakage_window_is_a_true_flag_not_a_holiday_flag():
    labels = pd.concat(
        [LABELS, _labels(("A", "under_reporting", "2026-01-14 00:00", "2026-01-20 00:00"))],
        ignore_index=True,
    )
    assert quiet_flags(labels, _flags(("A", "2026-01-15 01:00")))["holiday"] == 0


def test_normal_hours_are_open_hours_outside_padded_leakage():
    registry = pd.DataFrame(
        {
            "point_id": ["A", "Z"],
            "open_hours": ["08:00-12:00", "00:00-24:00"],
            "timezone": ["Asia/Jakarta", "Asia/Jakarta"],
        }
    )
    labels = _labels(("A", "device_off", "2026-01-10 02:00", "2026-01-10 03:00"))  # 09-10 local
    start, end = T("2026-01-09 17:00", tz="UTC"), T("2026-01-10 17:00", tz="UTC")  # one local day
    # A: 4 open hours minus the padded window 08:00-11:00 local = 1; Z: 24.
    assert normal_point_hours(registry, labels, start, end) == 1 + 24


def test_cases_are_true_when_they_touch_padded_leakage_and_cover_events_exactly():
    cases = pd.DataFrame(
        {
            "point_id": ["A", "A", "B"],
            "start_at": pd.to_datetime(
                ["2026-01-10 06:00", "2026-01-20 00:00", "2026-01-12 00:00"], utc=True
            ),
            "end_at": pd.to_datetime(
                ["2026-01-10 07:00", "2026-01-20 05:00", "2026-01-12 02:00"], utc=True
            ),
        }
    )
    figures = case_metrics(LABELS, cases)
    assert figures["cases"] == 3
    assert figures["true_cases"] == 2  # A right after its window (pad), B inside
    assert figures["case_recall"] == pytest.approx(1 / 3)  # only B's event overlapped exactly
    assert figures["cases_per_event"] == pytest.approx(3 / 3)
    assert figures["high_cases"] == 0 and figures["high_precision"] is None
    # Of two high-severity cases one is on leakage: an auditor's top of queue is half wrong.
    figures = case_metrics(LABELS, cases.assign(severity=["high", "high", "low"]))
    assert figures["high_cases"] == 2 and figures["high_precision"] == pytest.approx(0.5)


def test_report_and_tuning_seeds_never_mix():
    assert not set(REPORT_SEEDS) & set(TUNE_SEEDS)
    assert seed_use(list(REPORT_SEEDS)) == "report" and seed_use([1, 2]) == "tune"
    assert seed_use([5, 101]) == "other"


def test_score_cuts_to_the_window_and_reports_warmup_flags():
    registry = pd.DataFrame(
        {
            "point_id": ["A", "B", "C"],
            "open_hours": ["00:00-24:00"] * 3,
            "timezone": ["Asia/Jakarta"] * 3,
        }
    )
    flags = _flags(("A", "2026-01-01 00:00"), ("A", "2026-01-10 04:00"), ("B", "2026-01-18 00:00"))
    empty_cases = pd.DataFrame(columns=["point_id", "start_at", "end_at"])
    result = score(
        LABELS, flags, empty_cases, registry, T("2026-01-05", tz="UTC"), T("2026-01-19", tz="UTC")
    )
    assert result["warmup_flags"] == 1
    assert result["flagged_hours"] == 2
    assert result["caught"] == 1 and result["events"] == 3
    assert result["precision"] == pytest.approx(0.5)
    assert result["false_alarms"] == 1
    assert result["false_alarms_per_1000"] == pytest.approx(1000 / result["normal_hours"])
    assert result["missed"] == ["cash_skimming B 2026-01-11 02:00", "void_abuse C 2026-01-12 00:00"]


def test_summary_means_and_targets_are_honest():
    def run(seed, recall, precision, holiday):
        return SeedRun(
            seed=seed,
            metrics={
                "recall": recall,
                "recall_by_kind": {"device_off": recall},
                "precision": precision,
                "false_alarms_per_1000": 1.0,
                "quiet_flags": {"holiday": holiday, "closure": 0, "rain": 0},
                "case_precision": None,
                "case_recall": None,
            },
        )

    summary = summarise([run(1, 0.9, 0.7, 0), run(2, 0.7, 0.4, 6), run(3, 0.95, 0.55, 0)])
    assert summary["recall"] == pytest.approx(0.85)
    assert summary["precision"] == pytest.approx(0.55)
    assert summary["quiet_flags"]["holiday"] == pytest.approx(2.0)
    assert summary["targets"]["issue 3: recall >= 0.85"]
    assert not summary["targets"]["issue 3: precision >= 0.6"]
    assert summary["targets"]["issue 2: on at least two seeds"]  # seeds 1 and 3
    assert summary["case_precision"] is None


def test_an_event_beyond_the_data_stays_in_recall_and_is_named_apart():
    labels = LABELS.copy()
    labels["detectability"] = float("nan")  # the planter assesses missing sales only
    labels.loc[labels["kind"] == "device_off", "detectability"] = 0.4  # 3 hours, 1 sale due
    registry = pd.DataFrame(
        {"point_id": ["A", "B", "C"], "open_hours": ["00:00-24:00"] * 3, "timezone": ["UTC"] * 3}
    )
    flags = _flags(("B", "2026-01-12 04:00"))  # catches B's cash skimming only
    empty_cases = pd.DataFrame(columns=["point_id", "start_at", "end_at"])
    window = T("2026-01-05", tz="UTC"), T("2026-01-19", tz="UTC")
    result = score(labels, flags, empty_cases, registry, *window)
    assert result["recall"] == pytest.approx(1 / 3)  # the silence still counts as missed
    assert result["recall_within_data"] == pytest.approx(1 / 2)
    assert result["beyond_data"] == ["device_off A 2026-01-10 03:00 (0.4 units)"]
    assert "device_off A 2026-01-10 03:00" in result["missed"]
    # A reading of 3 units or more is within the data; labels without the column all are.
    labels.loc[labels["kind"] == "device_off", "detectability"] = 3.0
    again = score(labels, flags, empty_cases, registry, *window)
    assert again["beyond_data"] == [] and again["recall_within_data"] == pytest.approx(1 / 3)
    plain = score(LABELS, flags, empty_cases, registry, *window)
    assert plain["recall_within_data"] == plain["recall"]
