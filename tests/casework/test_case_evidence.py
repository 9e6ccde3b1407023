"""Which incidents open a case (issue 13 part 4): a volume-only dip of one or two days stays
flags; a device off or a pattern's own signal opens a case at once; a drop seen on three local
days is a case; flags stored before the evidence column count as they did. The rule is a pure
function of the stored flags, so these are small frames."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.casework.incidents import SUSTAINED_DAYS, raises_case

# 02:00 UTC is 09:00 in Asia/Jakarta: each day's hours fall on one local day.
DAY0 = pd.Timestamp("2026-01-05 02:00", tz="UTC")


def incident(hours_by_day: dict[int, int], evidence, severity: str = "medium") -> pd.DataFrame:
    """Flags of one point: ``hours_by_day`` maps a day offset to how many consecutive flagged
    hours it holds; every flag has ``evidence`` and ``severity``."""
    starts = [
        DAY0 + pd.Timedelta(days=day, hours=h) for day, n in hours_by_day.items() for h in range(n)
    ]
    return pd.DataFrame(
        {
            "point_id": "PKR-0001",
            "hour_start": starts,
            "kind": "under_reporting",
            "severity": severity,
            "evidence": evidence,
        }
    )


def test_a_few_hours_dip_of_volume_only_on_one_day_is_no_case():
    assert not raises_case(incident({0: 4}, "volume", "high"))


@pytest.mark.parametrize("days", [1, 2, 3, 5])
def test_a_volume_only_drop_is_a_case_once_it_is_seen_on_three_local_days(days):
    run = incident(dict.fromkeys(range(days), 2), "volume")
    assert raises_case(run) is (days >= SUSTAINED_DAYS)


@pytest.mark.parametrize("evidence", ["device", "pattern"])
def test_a_silent_device_or_a_patterns_own_signal_opens_a_case_on_one_day(evidence):
    run = incident({0: 2}, ["volume", evidence])
    assert raises_case(run)


def test_a_lone_low_hour_opens_no_case_whatever_its_evidence():
    assert not raises_case(incident({0: 1}, "device", "low"))
    assert raises_case(incident({0: 1}, "device", "medium"))


def test_flags_stored_before_the_evidence_column_count_as_before():
    """NULL evidence (flags of 0016 and earlier) and frames without the column: two flagged
    hours were a case, and stay one."""
    assert raises_case(incident({0: 2}, None))
    assert raises_case(incident({0: 2}, "volume").drop(columns=["evidence"]))
    assert not raises_case(incident({0: 1}, None, "low"))
