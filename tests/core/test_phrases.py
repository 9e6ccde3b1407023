"""Reasons as phrases: the English text stored beside them is what the producers always wrote,
and the JSON keeps every value as a value for the reader's language."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from pipeline.core.phrases import Phrase, as_phrase, dumps, english, kind_of, loads, phrase


def test_english_formats_each_value_by_the_end_of_its_name():
    part = phrase(
        "revenue %(drop_pct)s below the usual for %(at_slot)s (%(recorded_rp)s vs %(expected_rp)s)",
        drop_pct=np.float64(0.584),
        at_slot="Tue 10:00",
        recorded_rp=np.int64(2_000_000),
        expected_rp=4_812_345.6,
    )
    assert (
        part.english() == "revenue 58% below the usual for Tue 10:00 (Rp 2.000.000 vs Rp 4.812.346)"
    )
    assert isinstance(part.params["drop_pct"], float) and isinstance(
        part.params["recorded_rp"], int
    )


def test_nested_parts_days_kinds_and_times():
    late = phrase(
        "%(rows_n)s at %(first_at)s %(tz)s",
        rows_n=12,
        first_at=datetime(2026, 3, 1, 14, 5, tzinfo=ZoneInfo("Asia/Jakarta")),
        tz="Asia/Jakarta",
    )
    assert late.english() == "12 at 2026-03-01 14:05 Asia/Jakarta"
    head = phrase(
        "%(mix_kinds)s; %(span_days)s; %(on_day)s: %(why_part)s",
        mix_kinds=[["under_reporting", 3], ["device_off", 1]],
        span_days=["2026-03-01", "2026-03-07"],
        on_day=date(2026, 3, 2),
        why_part=phrase("attributed to no point and no collector"),
    )
    assert head.english() == (
        "under reporting 3 h, device off 1 h; 2026-03-01..2026-03-07; 2026-03-02: "
        "attributed to no point and no collector"
    )


def test_json_round_trip_and_old_rows():
    parts = [phrase("%(sales_n)s sales vs usual %(usual_n)s", sales_n=3.0, usual_n=11.6)]
    assert english(parts) == "3 sales vs usual 12"
    assert loads(dumps(parts)) == parts
    assert loads(None) is None and loads("") is None and loads("not json") is None


def test_finished_text_is_a_phrase_of_its_own_even_with_a_percent_sign():
    assert as_phrase("revenue 58% below usual").english() == "revenue 58% below usual"
    assert english([Phrase("a"), "b 10% c"]) == "a; b 10% c"


def test_kind_of_reads_only_the_known_suffixes():
    assert [kind_of(n) for n in ("short_rp", "at_slot", "operator", "tz", "first_part")] == [
        "rp",
        "slot",
        "",
        "",
        "part",
    ]
