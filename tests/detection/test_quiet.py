"""Issue 13 part 4 in the detector, on small frames: an hour that is not itself down is not
flagged because its day is, nor for days that are over; each flag says what kind of evidence
it carries (what the case rule reads)."""

from __future__ import annotations

import pandas as pd

from pipeline.detection.features import FEATURES
from pipeline.detection.quiet import (
    case_evidence,
    day_view_over,
    hour_not_down,
    shifted_day,
    weak_volume,
)

MIN_EVIDENCE = 3.0


def flags(**columns) -> pd.DataFrame:
    """Flagged hours (three, or as many as the lists given), every signal 0 unless given."""
    n = len(next(iter(columns.values()))) if columns else 3
    base = {name: [0.0] * n for name in FEATURES}
    base["kind"] = ["under_reporting"] * n
    # A point big enough to judge by the hour, each hour at its expectation.
    base["small_shortfall"] = [0.0] * n
    base["gross_paid"] = [100_000.0] * n
    base["expected_rev"] = [100_000.0] * n
    base["shift_days"] = [0] * n
    base["day_judged_hour"] = [False] * n
    base["day_ticket_ratio"] = [1.0] * n  # the day's ticket at its usual
    return pd.DataFrame({**base, **columns})


def test_an_hour_at_its_usual_level_on_a_low_day_is_not_flagged_for_it():
    """Day-level evidence out for the whole day: the hours that are themselves down (revenue or
    sales one noise unit or more) keep their flag, the hours at their usual level do not,
    whatever weak pattern named them; an hour with a pattern's own signal out, or a silent one,
    keeps its flag."""
    rows = flags(
        rev_drop=[0.4, 2.5, 0.2],
        count_drop=[0.3, 0.1, 0.9],
        kind=["under_reporting", "under_reporting", "cash_skimming"],
        cash_drop=[0.0, 0.0, 2.5],
    )
    assert hour_not_down(rows, MIN_EVIDENCE).tolist() == [True, False, True]
    kept = flags(
        kind=["cash_skimming", "ticket_shaving", "device_off"],
        op_cash_drop=[4.5, 0.0, 0.0],
        ticket_day_drop=[0.0, 4.5, 0.0],
    )
    assert hour_not_down(kept, MIN_EVIDENCE).tolist() == [False, False, False]


def test_a_weak_pattern_signal_on_an_hour_at_its_usual_level_is_not_flagged():
    """A cash share, a ticket or a few voids just past min_evidence (under the medium band)
    with revenue and sales ordinary is ordinary noise; at the medium band it is kept, and so is
    a weak one on an hour that is itself down."""
    rows = flags(
        kind=["cash_skimming", "void_abuse", "void_abuse"],
        op_cash_drop=[3.5, 0.0, 0.0],
        void_excess=[0.0, 4.3, 3.5],
        rev_drop=[0.5, 0.5, 2.0],
    )
    assert hour_not_down(rows, MIN_EVIDENCE).tolist() == [True, False, False]


def test_a_drop_of_earlier_days_does_not_flag_a_day_at_its_usual_level():
    """The point's views of the last days (level shift, 3/7 days) still out after a drop
    ended: an hour with nothing of its own is kept only while its day so far is itself down
    (1.5 day-to-day spreads or more below usual x peers). An operator's cash short over their
    shifts is kept on an ordinary day (skimming one shift barely moves the point's day), and
    so is a silent hour, or one with its own revenue out."""
    rows = flags(
        kind=["under_reporting", "under_reporting", "cash_skimming"],
        level_shift=[6.0, 6.0, 0.0],
        op_cash_short=[0.0, 0.0, 5.0],
        day_ratio=[0.9, 0.7, 0.97],
        day_peer=[1.0, 1.0, 1.0],
        phi_day=[0.12, 0.12, 0.12],
    )
    assert day_view_over(rows, MIN_EVIDENCE).tolist() == [True, False, False]
    own = rows.assign(kind=["device_off", "under_reporting", "cash_skimming"])
    own["rev_drop"] = [0.0, 0.0, 3.5]
    assert day_view_over(own, MIN_EVIDENCE).tolist() == [False, False, False]


def test_a_ticket_down_today_keeps_its_flag_at_a_point_whose_days_vary_widely():
    """Ticket shaving halves the ticket and leaves the sales as they were: the day's revenue
    falls by about as much as a busy restaurant's ordinary day varies (phi_day 0.43 here), so
    judged by its revenue the day was "ordinary" and every flag of the ticket's own day view was
    dropped (dev seeds 18, 23 and 25: three ticket shavings at 38-50% missed). The ticket's
    view counts its longer days only while today's ticket is itself down, so it is not over;
    a ticket under a fifth below its usual is ordinary commerce (the menu, a lot's mix of
    short and long stays) and stays judged by the day's revenue as before."""
    rows = flags(
        kind=["ticket_shaving", "ticket_shaving", "under_reporting"],
        ticket_day_drop=[6.5, 3.5, 0.0],
        level_shift=[0.0, 0.0, 4.0],
        day_ticket_ratio=[0.5, 0.9, 0.5],
        day_ratio=[0.55, 0.9, 0.55],
        day_peer=[1.0, 1.0, 1.0],
        phi_day=[0.43, 0.43, 0.43],
    )
    assert day_view_over(rows, MIN_EVIDENCE).tolist() == [False, True, True]


def test_each_flag_names_its_evidence_device_pattern_or_volume():
    rows = flags(
        kind=["device_off", "cash_skimming", "under_reporting"],
        op_cash_drop=[0.0, 5.0, 0.0],
        rev_drop=[4.0, 1.0, 6.0],
    )
    assert case_evidence(rows, MIN_EVIDENCE).tolist() == ["device", "pattern", "volume"]


def test_a_weak_pattern_signal_is_volume_evidence():
    """A cash share or ticket barely out (under the medium band, 1.4 x min_evidence) beside a
    revenue drop is what ordinary noise gives: the flag does not open a case on it."""
    rows = flags(
        kind=["cash_skimming", "ticket_shaving", "ticket_shaving"],
        cash_drop=[3.5, 0.0, 0.0],
        ticket_day_drop=[0.0, 3.9, 4.3],
    )
    assert case_evidence(rows, MIN_EVIDENCE).tolist() == ["volume", "volume", "pattern"]


def test_a_low_severity_flag_on_volume_alone_is_not_a_flag():
    """Revenue or sales a few noise units down with nothing else, at low severity, is what
    chance gives over the hours watched; the same at medium severity, or a low one resting on a
    pattern or a silent device, stays."""
    rows = flags(
        evidence=["volume", "volume", "pattern", "device"],
        severity=["low", "medium", "low", "low"],
    )
    assert weak_volume(rows, MIN_EVIDENCE).tolist() == [True, False, False, False]


def test_a_lasting_level_shift_keeps_one_hour_a_day_flagged():
    """A decided level shift of five days or more at a point whose hours are each at their
    expectation: the day's judged hour stays a flag through every quiet rule (at low severity
    too), the other hours of the day do not, and neither does a shift of four days."""
    rows = flags(
        level_shift=[3.3, 3.3, 3.3],
        shift_days=[6, 6, 4],
        day_judged_hour=[True, False, True],
        day_ratio=[0.7, 0.7, 0.7],
        day_peer=[1.0, 1.0, 1.0],
        phi_day=[0.3, 0.3, 0.3],
    )
    rows["evidence"] = "volume"
    rows["severity"] = "low"
    assert shifted_day(rows, MIN_EVIDENCE).tolist() == [True, False, False]
    for rule in (hour_not_down, day_view_over):
        assert rule(rows, MIN_EVIDENCE).tolist() == [False, True, True], rule.__name__
    assert weak_volume(rows, MIN_EVIDENCE).tolist() == [False, True, True]
