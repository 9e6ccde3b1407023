"""Alerts reach people: rules, e-mail through a real SMTP server and a webhook through Apprise to
a real HTTP receiver on 127.0.0.1, no repeats, every attempt recorded, a failing channel recorded
and retried, the daily digest - on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from pipeline.alerts import (
    DEFAULT_RULES,
    SmtpSettings,
    add_rule,
    list_rules,
    send_alerts,
    send_digests,
    set_rule_active,
)
from pipeline.alerts.channels import DeliveryError, Message, send_to_channel
from pipeline.casework.case_store import open_case
from pipeline.casework.users import add_user, set_email
from pipeline.core.errors import UnusableInputError
from pipeline.core.phrases import dumps, english, phrase
from pipeline.store.failures import record_failure
from pipeline.store.freshness import record_batch_freshness
from pipeline.store.schema import alert_deliveries, cases, points, transactions
from pipeline.store.upsert import upsert

JAKARTA = ZoneInfo("Asia/Jakarta")
AS_OF = datetime(2026, 3, 3, 14, 0, tzinfo=JAKARTA)  # a Tuesday afternoon, points open


def _now() -> datetime:
    return datetime.now(UTC)


def _subject(mail) -> str:
    # A long subject is folded after "Subject:"; a mail client reads it without the fold's space.
    return str(mail["Subject"]).strip()


def _smtp(port: int) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="eincome@pemkab.test")


def _sale(engine, point_id: str, txn_id: str, at: datetime) -> None:
    from pipeline.store.schema import ingest_batches

    with engine.begin() as connection:
        batch = connection.execute(
            ingest_batches.insert().values(
                source="test", source_ref=txn_id, started_at=_now(), status="done"
            )
        ).inserted_primary_key[0]
        connection.execute(
            transactions.insert().values(
                point_id=point_id,
                txn_id=txn_id,
                occurred_at=at,
                amount=5000,
                payment_method="cash",
                status="paid",
                batch_id=batch,
            )
        )
        # As ingest does in the batch's transaction: the newest sale per point, for freshness.
        record_batch_freshness(
            connection, batch_id=batch, source="test", newest_by_point={point_id: at}, now=_now()
        )


def _world(engine, *, selling: bool = True) -> None:
    """Two points (selling up to ten minutes before AS_OF), a supervisor, an ops person and an
    auditor with addresses."""
    with engine.begin() as connection:
        upsert(
            connection,
            points,
            [
                {
                    "point_id": pid,
                    "name": name,
                    "revenue_type": "parking",
                    "district": "Kota",
                    "open_hours": "06:00-22:00",
                    "timezone": "Asia/Jakarta",
                    "updated_at": datetime(2026, 3, 1, tzinfo=UTC),
                }
                for pid, name in (("PKR-001", "Parkir Alun-Alun"), ("PSR-002", "Pasar Induk"))
            ],
        )
    for name, role in (("sari", "supervisor"), ("oki", "ops"), ("budi", "auditor")):
        add_user(engine, name, role, "password-123", actor="test")
        set_email(engine, name, f"{name}@pemkab.test", actor="test")
    if selling:
        for point_id in ("PKR-001", "PSR-002"):
            _sale(engine, point_id, f"recent-{point_id}", AS_OF - timedelta(minutes=10))


def _case(
    engine, severity: str, shortfall_rp: int, *, assignee=None, due_on=None, start=None
) -> int:
    start = (start or datetime(2026, 3, 2, 10, tzinfo=JAKARTA)).astimezone(UTC)
    reasons = [
        phrase(
            "%(hours_n)s flagged hours, suspected %(suspected_kind)s, %(stake_rp)s at stake",
            hours_n=3,
            suspected_kind="under_reporting",
            stake_rp=shortfall_rp,
        )
    ]
    with engine.begin() as connection:
        case_id = open_case(
            connection,
            {
                "origin": "detector",
                "point_id": "PKR-001",
                "start_at": start,
                "end_at": start + timedelta(hours=3),
                "kind": "under_reporting",
                "score": 0.9,
                "severity": severity,
                "reasons": english(reasons),
                "reason_parts": dumps(reasons),
                "shortfall_rp": shortfall_rp,
                "model_version": "test",
            },
            now=_now(),
        )
        if assignee:
            connection.execute(
                cases.update()
                .where(cases.c.case_id == case_id)
                .values(assignee=assignee, due_on=due_on)
            )
    return int(case_id)


def _records(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(
            select(alert_deliveries).order_by(alert_deliveries.c.delivery_id)
        ).all()


def _send(engine, port, **kwargs):
    return send_alerts(engine, _smtp(port), as_of=AS_OF, lang="id", now=_now, **kwargs)


def test_a_high_case_is_emailed_once_to_the_supervisors_in_indonesian(engine, smtp):
    port, inbox = smtp
    _world(engine)
    high = _case(engine, "high", 1_234_567)
    _case(engine, "medium", 50_000)  # below the default rule's threshold
    # Opened now by a backfill, but its hours are 40 days old: the queue's, not an inbox's.
    _case(engine, "high", 7_000_000, start=AS_OF - timedelta(days=40))

    first = _send(engine, port, review_url="https://eincome.pemkab.test/")
    assert (first.sent, first.failed) == (1, 0)
    [mail] = inbox.to("sari@pemkab.test")
    assert _subject(mail) == f"Kasus #{high}, keparahan tinggi: Parkir Alun-Alun (PKR-001)"
    body = mail.get_content()
    assert "Taksiran kebocoran: Rp 1.234.567" in body
    [why] = [line for line in body.splitlines() if line.startswith("Alasan: ")]
    assert "Rp 1.234.567" in why and "3 jam" in why  # the reasons, said in Indonesian
    assert f"https://eincome.pemkab.test/cases/{high}" in body
    assert mail["From"] == "eincome@pemkab.test"
    assert not inbox.to("budi@pemkab.test") and not inbox.to("oki@pemkab.test")

    second = _send(engine, port)
    assert (second.sent, second.failed, second.already_sent) == (0, 0, 1)
    assert len(inbox.mails) == 1
    [record] = _records(engine)
    assert (record.what, record.subject_key, record.recipient, record.address) == (
        "case",
        f"case:{high}",
        "user:sari",
        "sari@pemkab.test",
    )
    assert (record.channel, record.status, record.attempt, record.error) == (
        "email",
        "sent",
        1,
        None,
    )
    assert record.finished_at >= record.started_at


def test_a_refused_email_is_recorded_and_sent_on_the_next_run(engine, smtp):
    port, inbox = smtp
    _world(engine)
    case_id = _case(engine, "high", 900_000)
    inbox.refusing = True
    failed = _send(engine, port)
    assert (failed.sent, failed.failed) == (0, 1)
    [record] = _records(engine)
    assert record.status == "failed" and "554" in record.error and record.attempt == 1

    inbox.refusing = False
    retried = _send(engine, port)
    assert (retried.sent, retried.failed) == (1, 0)
    assert [r.status for r in _records(engine)] == ["failed", "sent"]
    assert _records(engine)[-1].attempt == 2
    assert f"#{case_id}" in _subject(inbox.to("sari@pemkab.test")[0])
    assert _send(engine, port).sent == 0


def test_an_unreachable_smtp_server_never_fails_the_run(engine):
    _world(engine)
    _case(engine, "high", 900_000)
    result = send_alerts(
        engine,
        SmtpSettings(host="127.0.0.1", port=1, starttls=False, timeout_seconds=2),
        as_of=AS_OF,
        lang="id",
        now=_now,
    )
    assert result.failed == 1 and "127.0.0.1:1" in _records(engine)[0].error
    unset = send_alerts(engine, SmtpSettings(), as_of=AS_OF, lang="id", now=_now)
    assert unset.failed == 1 and "EINCOME_SMTP_HOST" in _records(engine)[-1].error


def test_a_webhook_channel_gets_each_case_once_and_a_down_channel_is_retried(engine, smtp, webhook):
    port, _ = smtp
    host, hook = webhook
    _world(engine)
    url = f"json://{host}/hooks/eincome"
    add_rule(engine, "medium to chat", "case", min_severity="medium", to_channel=url, actor="t")
    add_rule(engine, "same chat again", "case", min_severity="high", to_channel=url, actor="t")
    medium = _case(engine, "medium", 75_500)
    high = _case(engine, "high", 2_500_000)

    hook.failing = True
    down = _send(engine, port)
    assert down.failed == 2 and not hook.posts
    failed = [r for r in _records(engine) if r.channel == "apprise"]
    assert {r.status for r in failed} == {"failed"} and all(r.error for r in failed)
    assert all(r.address == "json://…/eincome" for r in failed)  # no URL secrets in the record

    hook.failing = False
    up = _send(engine, port)
    assert up.failed == 0
    assert sorted(path for path, _ in hook.posts) == ["/hooks/eincome"] * 2
    titles = sorted(post["title"] for _, post in hook.posts)
    assert titles == sorted(
        [
            f"Kasus #{medium}, keparahan sedang: Parkir Alun-Alun (PKR-001)",
            f"Kasus #{high}, keparahan tinggi: Parkir Alun-Alun (PKR-001)",
        ]
    )
    assert any("Rp 75.500" in post["message"] for _, post in hook.posts)
    # Both rules name the same channel: the high case was posted there once, not twice.
    assert _send(engine, port).sent == 0 and len(hook.posts) == 2


def test_a_point_silent_in_open_hours_alerts_ops_once_per_episode(engine, smtp):
    port, inbox = smtp
    _world(engine, selling=False)
    _sale(engine, "PKR-001", "a", AS_OF - timedelta(hours=3))  # 12:00, 13:00 silent
    _sale(engine, "PSR-002", "b", AS_OF - timedelta(minutes=20))  # selling
    result = _send(engine, port)
    assert result.sent == 1
    [mail] = inbox.to("oki@pemkab.test")
    assert _subject(mail) == (
        "Tidak ada transaksi dari Parkir Alun-Alun (PKR-001) selama 2 jam buka"
    )
    assert "transaksi terakhir: 3 Mar 2026 11.00 WIB" in mail.get_content()
    later = send_alerts(
        engine, _smtp(port), as_of=AS_OF + timedelta(minutes=20), lang="id", now=_now
    )
    # Still silent, PSR-002 not yet two whole hours: the same episode is not sent again.
    assert later.sent == 0 and later.already_sent == 1
    _sale(engine, "PKR-001", "c", AS_OF + timedelta(minutes=5))
    _sale(engine, "PSR-002", "d", AS_OF + timedelta(hours=3))
    # A sale ended the episode; silent again until 17:30 local is a new one.
    again = send_alerts(
        engine, _smtp(port), as_of=AS_OF + timedelta(hours=3, minutes=30), lang="id", now=_now
    )
    assert again.sent == 1 and len(inbox.to("oki@pemkab.test")) == 2
    assert "3 Mar 2026 14.05 WIB" in inbox.to("oki@pemkab.test")[1].get_content()


def test_night_hours_do_not_count_as_silence(engine, smtp):
    port, inbox = smtp
    _world(engine, selling=False)
    for point_id in ("PKR-001", "PSR-002"):
        _sale(engine, point_id, "last", datetime(2026, 3, 2, 21, 30, tzinfo=JAKARTA))
    # Last sales at 21:30 and closed 22:00-06:00: no open hour silent at 03:00.
    night = datetime(2026, 3, 3, 3, 0, tzinfo=JAKARTA)
    assert send_alerts(engine, _smtp(port), as_of=night, lang="id", now=_now).sent == 0
    # ... at 07:45 one whole open hour (06:00) is silent; at 08:00 two: the rule's threshold.
    morning = datetime(2026, 3, 3, 7, 45, tzinfo=JAKARTA)
    assert send_alerts(engine, _smtp(port), as_of=morning, lang="id", now=_now).sent == 0
    eight = datetime(2026, 3, 3, 8, 0, tzinfo=JAKARTA)
    assert send_alerts(engine, _smtp(port), as_of=eight, lang="id", now=_now).sent == 2
    assert "selama 2 jam buka" in _subject(inbox.mails[0][1])


def test_a_pipeline_failure_alerts_ops_once(engine, smtp):
    port, inbox = smtp
    _world(engine)
    record_failure(engine, "eincome_ingest.pull[landing]", "scheduled__1", "OSError: disk full")
    assert _send(engine, port).sent >= 1
    [mail] = inbox.to("oki@pemkab.test")
    assert _subject(mail) == "Kegagalan pipeline: eincome_ingest.pull[landing]"
    assert "Galat: OSError: disk full" in mail.get_content()
    assert _send(engine, port).sent == 0


def test_the_daily_digest_lists_an_inspectors_open_cases_overdue_first(engine, smtp):
    port, inbox = smtp
    _world(engine)
    today = date(2026, 3, 4)
    on_time = _case(engine, "low", 40_000, assignee="budi", due_on=date(2026, 3, 9))
    late = _case(engine, "medium", 1_500_000, assignee="budi", due_on=date(2026, 3, 2))
    decided = _case(engine, "high", 10, assignee="budi")
    with engine.begin() as connection:
        connection.execute(
            cases.update().where(cases.c.case_id == decided).values(status="false_alarm")
        )
    set_rule_active(engine, "high cases to supervisors", False)

    result = send_digests(engine, _smtp(port), day=today, lang="id", now=_now)
    assert (result.sent, result.failed) == (1, 0)  # budi only: sari and oki have no open case
    [mail] = inbox.mails
    assert mail[0] == ["budi@pemkab.test"]
    message = mail[1]
    assert _subject(message) == "Kasus terbuka Anda per 4 Mar 2026: 2, 1 lewat tenggat"
    lines = [line for line in message.get_content().splitlines() if line.startswith("- ")]
    assert lines[0].startswith(f"- LEWAT TENGGAT #{late} Parkir Alun-Alun (PKR-001)")
    assert "Rp 1.500.000" in lines[0] and "tenggat 2 Mar 2026" in lines[0]
    assert lines[1].startswith(f"- #{on_time} ") and "Rp 40.000" in lines[1]
    assert len(lines) == 2  # the decided case is not open work
    again = send_digests(engine, _smtp(port), day=today, lang="id", now=_now)
    assert again.sent == 0 and len(inbox.mails) == 1
    assert (
        send_digests(engine, _smtp(port), day=today + timedelta(days=1), lang="id", now=_now).sent
        == 1
    )


def test_the_seeded_rules_are_the_default_rule_set(engine):
    """Migration 0014 seeds what rules.DEFAULT_RULES documents."""
    seeded = [
        {k: v for k, v in vars(r).items() if k in d} | {"name": r.name}
        for r, d in zip(list_rules(engine), DEFAULT_RULES, strict=True)
    ]
    assert seeded == [dict(d) for d in DEFAULT_RULES]
    assert all(r.active and r.created_by == "migration 0014" for r in list_rules(engine))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"event": "sms", "to_role": "ops"}, "'sms'"),
        ({"event": "case", "min_severity": "urgent", "to_role": "ops"}, "'urgent'"),
        ({"event": "case", "to_role": "boss"}, "'boss'"),
        ({"event": "case", "to_user": "nobody"}, "'nobody'"),
        ({"event": "failure", "to_channel": "not a url"}, "'not a url'"),
        ({"event": "failure", "to_role": "ops", "to_user": "sari"}, "exactly one"),
        ({"event": "silence", "silent_hours": 0, "to_role": "ops"}, "0"),
        ({"event": "silence", "silent_hours": 169, "to_role": "ops"}, "169"),
        ({"event": "failure", "min_severity": "high", "to_role": "ops"}, "case rules only"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_value(sqlite_url, kwargs, named):
    from pipeline.store import connect

    engine = connect(sqlite_url)
    with pytest.raises(UnusableInputError) as refused:
        add_rule(engine, "r", actor="t", **kwargs)
    assert named in str(refused.value) and "'r'" in str(refused.value)


def test_a_channel_without_the_alerts_extra_says_which_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "apprise", None)
    with pytest.raises(DeliveryError, match=r"pip install 'eincome\[alerts\]'"):
        send_to_channel("json://127.0.0.1:9/x", Message("t", "b"))


def test_the_database_allows_one_live_send_per_subject_and_recipient(engine):
    """The partial unique index of migration 0014 on both databases: a second claim while the
    first is sending, or after it was sent, gets nothing; after a failure, the next attempt."""
    from sqlalchemy.exc import IntegrityError

    from pipeline.alerts.deliveries import claim, finish

    def claimed():
        return claim(engine, rule_id=None, what="case", subject_key="case:1",
                     recipient="user:sari", address="s@x.id", channel="email", title="t",
                     now=_now())  # fmt: skip

    first = claimed()
    assert first is not None and claimed() is None  # still sending
    finish(engine, first, error="refused", now=_now())
    second = claimed()
    assert second is not None and claimed() is None
    finish(engine, second, error=None, now=_now())
    assert claimed() is None
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            alert_deliveries.insert().values(
                what="case", subject_key="case:1", recipient="user:sari", address="s@x.id",
                channel="email", title="t", status="sent", attempt=3, started_at=_now(),
            )
        )  # fmt: skip
    assert [r.attempt for r in _records(engine)] == [1, 2]


@pytest.mark.postgres
def test_two_overlapping_runs_send_a_case_once(postgres_url, smtp):
    """Two hourly runs at once (the detect DAG allows four): one e-mail, one sent record."""
    import threading

    from pipeline.store import connect

    port, inbox = smtp
    engine = connect(postgres_url)
    _world(engine)
    for _ in range(5):
        _case(engine, "high", 500_000)
    barrier = threading.Barrier(2)
    results = []

    def run():
        barrier.wait()
        results.append(_send(engine, port))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2  # both runs finished (a thread's exception would be lost)
    assert sum(r.sent for r in results) == 5 and sum(r.failed for r in results) == 0
    assert len(inbox.to("sari@pemkab.test")) == 5
    assert [r.status for r in _records(engine)] == ["sent"] * 5
    engine.dispose()
