"""Issue 13 part 4 in the detector, on small frames: an hour that is not itself down is not
flagged because its day is; each flag says what kind of evidence it carries
(what the case rule reads)."""

from __future__ import annotations

import pandas as pd

from pipeline.detection.quiet import PATTERN_SIGNALS, case_evidence, hour_not_down

MIN_EVIDENCE = 3.0


def flags(**columns) -> pd.DataFrame:
    """Three flagged hours, every signal 0 unless given (a list of three values)."""
    base = {name: [0.0] * 3 for name in (*PATTERN_SIGNALS, "rev_drop", "count_drop")}
    base["kind"] = ["under_reporting"] * 3
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
        op_cash_drop=[3.2, 0.0, 0.0],
        ticket_day_drop=[0.0, 4.0, 0.0],
    )
    assert hour_not_down(kept, MIN_EVIDENCE).tolist() == [False, False, False]


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
