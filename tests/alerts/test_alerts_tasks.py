"""The DAG tasks' alert calls (pipeline.orchestration), on the environment a task reads, to a
real SMTP server on 127.0.0.1: the hourly send and the daily digest, each once."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pipeline.casework.users import add_user, set_email
from pipeline.orchestration import send_alerts_as_of, send_digest_of
from pipeline.store import connect
from pipeline.store.failures import record_failure
from pipeline.store.schema import cases


def test_the_hourly_and_daily_tasks_send_once(tmp_path, smtp_home):
    inbox = smtp_home
    engine = connect(f"sqlite:///{tmp_path / 'eincome.db'}")
    add_user(engine, "oki", "ops", "password-123", actor="test")
    set_email(engine, "oki", "oki@pemkab.test", actor="test")
    add_user(engine, "budi", "auditor", "password-123", actor="test")
    set_email(engine, "budi", "budi@pemkab.test", actor="test")
    record_failure(engine, "eincome_ingest.pull[kota]", "scheduled__x", "TimeoutError: slow")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            cases.insert().values(
                point_id="P1",
                start_at=now,
                end_at=now,
                kind="device_off",
                score=1.0,
                severity="low",
                reasons="r",
                shortfall_rp=10_000,
                status="open",
                assignee="budi",
                created_at=now,
                updated_at=now,
            )
        )
    engine.dispose()

    hour_end = datetime(2026, 3, 3, 7, tzinfo=UTC)
    assert send_alerts_as_of(hour_end)["sent"] == 1  # the failure, to ops
    assert send_alerts_as_of(hour_end) == {
        "sent": 0,
        "failed": 0,
        "already_sent": 1,
        "no_address": [],
        "errors": [],
    }
    assert send_digest_of(date(2026, 3, 4))["sent"] == 1
    assert send_digest_of(date(2026, 3, 4))["sent"] == 0
    assert sorted(r[0] for r, _ in inbox.mails) == ["budi@pemkab.test", "oki@pemkab.test"]
