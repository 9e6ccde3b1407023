"""The shared units: rupiah as people read them, times as the pipeline keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.core.money import group_thousands, rupiah, rupiah_short
from pipeline.core.times import ceil_hour, floor_hour, to_utc

WIB = timezone(timedelta(hours=7))


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "Rp 0"),
        (1234567, "Rp 1.234.567"),
        (-85000, "-Rp 85.000"),
        (999.6, "Rp 1.000"),
        (None, "–"),
    ],
)
def test_rupiah(value, shown):
    assert rupiah(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (12_194_000, "Rp 12,2 jt"),
        (850_000, "Rp 850 rb"),
        (2_000_000_000, "Rp 2 M"),
        (500, "Rp 500"),
    ],
)
def test_rupiah_short(value, shown):
    assert rupiah_short(value) == shown


def test_group_thousands_has_no_currency_sign():
    assert group_thousands(24625) == "24.625"


def test_to_utc_refuses_naive_times_and_converts_aware_ones():
    with pytest.raises(ValueError, match="naive"):
        to_utc(datetime(2026, 3, 1, 10))
    moment = to_utc(datetime(2026, 3, 1, 10, 15, tzinfo=WIB))
    assert moment == datetime(2026, 3, 1, 3, 15, tzinfo=UTC) and moment.tzinfo is UTC


def test_hour_floor_and_ceiling_are_utc_hours():
    assert floor_hour(datetime(2026, 3, 1, 10, 15, tzinfo=WIB)) == datetime(
        2026, 3, 1, 3, tzinfo=UTC
    )
    assert ceil_hour(datetime(2026, 3, 1, 10, 15, tzinfo=WIB)) == datetime(
        2026, 3, 1, 4, tzinfo=UTC
    )
    assert ceil_hour(datetime(2026, 3, 1, 3, tzinfo=UTC)) == datetime(2026, 3, 1, 3, tzinfo=UTC)
