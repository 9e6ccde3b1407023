"""The detector's reasons, one function alone: phrases whose English is the stored text."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.detection.detector import _silent_reason


def _silent_hour(**figures) -> SimpleNamespace:
    base = dict(
        expected_rev=0.0, expected_cnt=0.0, usual_rev=0.0, usual_cnt=0.0, local_time="Wed 03:00"
    )
    return SimpleNamespace(**{**base, **figures})


def test_a_silent_hour_under_one_usual_sale_is_not_said_as_zero_sales():
    """It read "usually 0 sales (Rp 122.000)": the usual count is an average (0.4 a night hour),
    rounded to 0 beside the positive usual revenue."""
    part = _silent_reason(_silent_hour(expected_rev=122_000.0, expected_cnt=0.4))
    assert part.english() == (
        "no transactions while open; 0.4 sales on average (Rp 122.000) expected at Wed 03:00"
    )


def test_a_silent_hour_quotes_the_expected_sales_the_shortfall_uses():
    # usual x peers (the shortfall's "expected"), not the usual alone
    part = _silent_reason(
        _silent_hour(expected_rev=180_000.0, expected_cnt=6.2, usual_rev=240_000.0, usual_cnt=8.0)
    )
    assert part.english() == (
        "no transactions while open; 6 sales (Rp 180.000) expected at Wed 03:00"
    )
    assert part.params["expected_rp"] == 180_000
    # where peers give no expectation, the usual level is what the shortfall falls back to
    fallback = _silent_reason(_silent_hour(usual_rev=240_000.0, usual_cnt=8.0))
    assert fallback.params == {"sales_n": 8.0, "expected_rp": 240_000, "at_slot": "Wed 03:00"}
