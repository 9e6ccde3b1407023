"""The one writer of ``cases`` and its one rule, on SQLite and PostgreSQL: a case a person has
acted on (decided, assigned, noted) is never rewritten or deleted by the detector's or
reconciliation's reruns; and no other module writes the table."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update

from pipeline.casework import audit
from pipeline.casework.case_store import ACTED_ON, acted_on_ids, drop_cases, open_case, rewrite_case
from pipeline.casework.cases import record_flags
from pipeline.casework.users import User, add_user
from pipeline.store.schema import anomalies, cases, points

AUDITOR = User("ani", "auditor")
H1 = datetime(2026, 3, 2, 3, tzinfo=UTC)  # 10:00 in Jakarta
DAY = H1.replace(hour=0)
PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


def _case(engine, **fields) -> int:
    values = {
        "origin": "detector",
        "point_id": "P01",
        "start_at": H1,
        "end_at": H1 + timedelta(hours=1),
        "kind": "void_abuse",
        "score": 0.5,
        "severity": "low",
        "reasons": "planted",
        "shortfall_rp": 1_000,
        **fields,
    }
    with engine.begin() as connection:
        return open_case(connection, values, now=H1)


def test_acted_on_means_decided_assigned_or_noted(engine):
    untouched = _case(engine)
    decided = _case(engine)
    assigned = _case(engine)
    noted = _case(engine)
    with engine.begin() as connection:
        connection.execute(
            update(cases).where(cases.c.case_id == decided).values(status="confirmed")
        )
        connection.execute(update(cases).where(cases.c.case_id == assigned).values(assignee="ani"))
    audit.add_note(engine, noted, AUDITOR, "called the attendant")
    ids = [untouched, decided, assigned, noted]
    with engine.connect() as connection:
        by_function = acted_on_ids(connection, ids)
        by_sql = set(connection.execute(select(cases.c.case_id).where(ACTED_ON)).scalars())
    assert by_function == by_sql == {decided, assigned, noted}


def test_writes_of_a_producer_skip_a_case_a_person_acted_on(engine):
    untouched, noted = _case(engine), _case(engine)
    audit.add_note(engine, noted, AUDITOR, "document found")
    with engine.begin() as connection:
        assert rewrite_case(connection, untouched, {"score": 0.9})
        assert not rewrite_case(connection, noted, {"score": 0.9})
        assert drop_cases(connection, [untouched, noted]) == 1
    with engine.connect() as connection:
        (row,) = connection.execute(select(cases)).mappings().all()
    assert row["case_id"] == noted and row["score"] == 0.5
    assert [e.note for e in audit.trail(engine, noted)] == ["document found"]


# --- the detector as producer ---------------------------------------------------------------------


def _flags(hours: int, score: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "point_id": "P01",
                "hour_start": pd.Timestamp(H1 + timedelta(hours=i)),
                "score": score,
                "severity": "high",
                "kind": "void_abuse",
                "reasons": f"planted, score {score}",
                "shortfall_rp": 50_000,
                "operators": "op-1",
            }
            for i in range(hours)
        ]
    )


def _score(engine, hours: int, score: float):
    flags = _flags(hours, score)
    return record_flags(engine, flags, DAY, DAY + timedelta(days=1), model_version="m-test")


@pytest.fixture
def detector_case(engine):
    """One open detector case of two flagged hours at P01; returns its id."""
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
    _score(engine, 2, 0.6)
    with engine.connect() as connection:
        return connection.execute(select(cases.c.case_id)).scalar_one()


def _row(engine, case_id: int) -> dict:
    with engine.connect() as connection:
        return dict(
            connection.execute(select(cases).where(cases.c.case_id == case_id)).mappings().one()
        )


def _anomaly_scores(engine, case_id: int) -> list[float]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(anomalies.c.score).where(anomalies.c.case_id == case_id)
            ).scalars()
        )


def test_noted_open_detector_case_survives_rescoring_with_its_note(engine, detector_case):
    audit.add_note(engine, detector_case, AUDITOR, "attendant says the printer jammed")
    before = _row(engine, detector_case)
    _score(engine, 3, 0.9)  # rescored: one more hour, higher scores
    assert _row(engine, detector_case) == before
    assert _anomaly_scores(engine, detector_case) == [0.6, 0.6]
    assert [e.note for e in audit.trail(engine, detector_case)] == [
        "attendant says the printer jammed"
    ]
    _score(engine, 0, 0.0)  # rescored clean: the case a person worked on stays
    assert _row(engine, detector_case) == before


def test_assigned_open_detector_case_survives_rescoring(engine, detector_case):
    add_user(engine, "budi", "auditor", "a-long-password", actor="test")
    audit.assign(engine, detector_case, User("sri", "supervisor"), "budi", "please look")
    before = _row(engine, detector_case)
    _score(engine, 3, 0.9)
    assert _row(engine, detector_case) == before and before["assignee"] == "budi"


def test_untouched_open_detector_case_is_rebuilt(engine, detector_case):
    _score(engine, 3, 0.9)
    rebuilt = _row(engine, detector_case)  # same point and start: the id is reused
    assert rebuilt["score"] == 0.9 and _anomaly_scores(engine, detector_case) == [0.9] * 3


def test_decided_detector_case_is_never_rewritten(engine, detector_case):
    audit.decide(engine, detector_case, AUDITOR, "confirmed", "seen on camera", false_alarm_days=7)
    before = _row(engine, detector_case)
    _score(engine, 3, 0.9)
    assert _row(engine, detector_case) == before


# --- one writer -----------------------------------------------------------------------------------


def _writes_of_cases(tree: ast.AST) -> list[int]:
    """Lines calling insert/update/delete(cases) or cases.insert/update/delete()."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in ("insert", "update", "delete") and any(
            isinstance(a, ast.Name) and a.id == "cases" for a in node.args
        ):
            lines.append(node.lineno)
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("insert", "update", "delete")
            and isinstance(func.value, ast.Name)
            and func.value.id == "cases"
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_case_store_writes_cases():
    writers = {
        str(path.relative_to(PIPELINE.parent)): lines
        for path in sorted(PIPELINE.rglob("*.py"))
        if (lines := _writes_of_cases(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert set(writers) == {"pipeline/casework/case_store.py"}, writers
