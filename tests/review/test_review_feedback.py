"""Feedback from auditors to detection, across the two stages: a false alarm keeps the same kind
at the same point from being raised by the next scoring runs (for the configured period only),
and confirmed leakage is what the detector's features leave out of the usual level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import select

from pipeline.casework import audit
from pipeline.casework.cases import record_flags
from pipeline.casework.users import User
from pipeline.detection.features import confirmed_windows
from pipeline.store.schema import cases, points

AUDITOR = User("demo", "auditor")
H1 = datetime(2026, 3, 2, 3, tzinfo=UTC)  # 10:00 in Jakarta


def _flags(*rows) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "point_id": "P01",
                "hour_start": pd.Timestamp(hour),
                "score": 0.8,
                "severity": "high",
                "kind": kind,
                "reasons": f"planted {kind}",
                "shortfall_rp": 50_000,
                "operators": "op-1",
            }
            for hour, kind in rows
        ]
    )


def _score(engine, day_start: datetime, *rows):
    return record_flags(
        engine, _flags(*rows), day_start, day_start + timedelta(days=1), model_version="m-test"
    )


def _open_cases(engine) -> list[tuple[str, datetime]]:
    with engine.connect() as connection:
        return [
            (r.kind, r.start_at)
            for r in connection.execute(
                select(cases.c.kind, cases.c.start_at)
                .where(cases.c.status == "open")
                .order_by(cases.c.start_at)
            )
        ]


def test_false_alarm_silences_that_kind_at_that_point_for_the_period(engine):
    with engine.begin() as connection:
        connection.execute(
            points.insert().values(
                point_id="P01",
                name="Parkir 1",
                revenue_type="parking",
                district="Kota",
                open_hours="07:00-21:00",
                timezone="Asia/Jakarta",
                updated_at=H1,
            )
        )
    day = H1.replace(hour=0)
    _score(engine, day, (H1, "void_abuse"))
    with engine.connect() as connection:
        case_id = connection.execute(select(cases.c.case_id)).scalar_one()
    audit.decide(
        engine,
        case_id,
        AUDITOR,
        "false_alarm",
        "event day",
        false_alarm_days=30,
        now=H1 + timedelta(hours=6),
    )

    # Two days later: the same pattern is dropped, another pattern at the point is still raised.
    later = day + timedelta(days=2)
    result = _score(
        engine,
        later,
        (later + timedelta(hours=4), "void_abuse"),
        (later + timedelta(hours=8), "cash_skimming"),
    )
    assert result.suppressed == 1
    assert [kind for kind, _ in _open_cases(engine)] == ["cash_skimming"]

    # After the configured 30 days the same pattern is raised again.
    much_later = day + timedelta(days=40)
    result = _score(engine, much_later, (much_later + timedelta(hours=4), "void_abuse"))
    assert result.suppressed == 0
    assert "void_abuse" in [kind for kind, _ in _open_cases(engine)]

    # Reopening ends the suppression: the pattern is raised again at once.
    supervisor = User("boss", "supervisor")
    reopened = audit.reopen(
        engine, case_id, supervisor, "theft after all", now=H1 + timedelta(days=1)
    )
    assert reopened["ended_suppression_ids"]
    audit.decide(
        engine,
        case_id,
        AUDITOR,
        "confirmed",
        "operator admitted it",
        false_alarm_days=30,
        now=H1 + timedelta(days=1, hours=1),
    )
    again = day + timedelta(days=3)
    assert _score(engine, again, (again + timedelta(hours=5), "void_abuse")).suppressed == 0

    # Confirmed: the detector's features and the review app see the same window.
    mine = audit.confirmed_leakage_windows(engine, ["P01"])
    theirs = confirmed_windows(engine, day - timedelta(days=7), day + timedelta(days=60))
    assert [(w.point_id, w.start_at, w.end_at) for w in mine] == [
        (r.point_id, r.start_at.to_pydatetime(), r.end_at.to_pydatetime())
        for r in theirs.itertuples()
    ]
