"""The case hours kept out of the usual level, point in time (SQLite and PostgreSQL): a
volume-only drop becomes a case on its third day, reaching back to its first; the usual levels
of a week whose retrain moment fell before that third day leave its hours in, as a week scored
at once would have known them; a device off is kept out from its first hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from pipeline.casework.cases import list_cases, record_flags
from pipeline.detection.features import unusual_case_windows
from tests.helpers.registry import register

# 03:00 UTC is 10:00 in Asia/Jakarta; each day's flags fall on one local day.
DAY0 = datetime(2026, 3, 9, 3, tzinfo=UTC)
WINDOW = (DAY0 - timedelta(weeks=8), DAY0 + timedelta(days=5))


def flags(point: str, days: list[int], evidence: str, kind: str) -> pd.DataFrame:
    starts = [pd.Timestamp(DAY0 + timedelta(days=d, hours=h)) for d in days for h in range(2)]
    return pd.DataFrame(
        {
            "point_id": point,
            "hour_start": starts,
            "score": 0.6,
            "severity": "medium",
            "kind": kind,
            "evidence": evidence,
            "reasons": "revenue 40% below the usual",
            "shortfall_rp": 10_000,
            "operators": None,
        }
    )


def test_a_case_counts_for_the_usual_level_from_the_moment_its_flags_made_it_one(engine):
    register(engine, "P1", "P2")
    found = pd.concat(
        [
            flags("P1", [0, 1, 2], "volume", "under_reporting"),
            flags("P2", [0], "device", "device_off"),
        ]
    )
    record_flags(engine, found, DAY0, DAY0 + timedelta(days=3), model_version="m-test")
    assert sorted(list_cases(engine)["point_id"]) == ["P1", "P2"]

    def kept_out(moment: datetime) -> list[str]:
        return sorted(unusual_case_windows(engine, *WINDOW, opened_before=moment)["point_id"])

    # Before the third day's flags P1 was two days of flags, not yet a case.
    assert kept_out(DAY0 + timedelta(days=2)) == ["P2"]
    assert kept_out(DAY0 + timedelta(days=2, hours=1)) == ["P1", "P2"]
    assert kept_out(DAY0) == []
    # Without a moment (the hindsight baseline) every undecided case counts, as before.
    assert sorted(unusual_case_windows(engine, *WINDOW)["point_id"]) == ["P1", "P2"]
