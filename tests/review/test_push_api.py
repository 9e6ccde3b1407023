"""The push API over real HTTP (uvicorn on 127.0.0.1) on SQLite and PostgreSQL: keys, validation,
idempotent resends, limits, and the aggregates the dashboard reads."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from pipeline.intake.push import issue_key, revoke_key
from pipeline.review.push_openapi import push_openapi
from pipeline.store.schema import minute_aggregates, push_requests, quarantine, transactions
from tests.helpers import REPO_ROOT
from tests.helpers.push_client import push, sale


def _count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_no_key_wrong_key_and_revoked_key_are_refused_401(push_app):
    base, engine, key = push_app
    rows = [sale("t1", "P1")]
    missing = push(base, None, rows)
    assert missing.status_code == 401
    assert "no API key" in missing.json()["error"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = push(base, key[:-4] + "AAAA", rows)
    assert wrong.status_code == 401 and wrong.json()["error"] == "the API key is not valid"
    assert push(base, "not-a-key", rows).status_code == 401
    prefix = key.split("_")[1]
    revoke_key(engine, prefix, actor="test")
    revoked = push(base, key, rows)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    assert _count(engine, transactions) == 0


def test_a_key_for_another_point_stores_nothing_403(push_app):
    base, engine, key = push_app
    answer = push(base, key, [sale("t1", "P1"), sale("t2", "P2")])
    assert answer.status_code == 403
    assert "P2" in answer.json()["error"] and "covers P1" in answer.json()["error"]
    assert _count(engine, transactions) == 0
    # The refusal is the key's use, recorded.
    with engine.connect() as connection:
        used = connection.execute(select(push_requests.c.status, push_requests.c.status_code)).all()
    assert [tuple(u) for u in used] == [("refused", 403)]


def test_rows_are_validated_by_the_suite_and_each_rejected_row_says_why(push_app):
    base, engine, key = push_app
    rows = [
        sale("ok-1", "P1", 12_000),
        sale("neg", "P1", -5),
        {**sale("nozone", "P1"), "occurred_at": "2026-03-01T10:15:00"},
        {k: v for k, v in sale("noamount", "P1").items() if k != "amount"},
        sale("ok-2", "P1", 3_000, payment_method="qris"),
    ]
    answer = push(base, key, rows)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["rows_read"], body["accepted"], body["quarantined"], body["duplicates"]) == (
        5,
        2,
        3,
        0,
    )
    assert body["status"] == "done" and body["replayed"] is False
    reasons = {r["row"]: r for r in body["rejected"]}
    assert set(reasons) == {2, 3, 4}
    assert "negative" in reasons[2]["reason"]
    assert "offset" in reasons[3]["reason"]
    assert "amount" in reasons[4]["reason"] and reasons[4]["txn_id"] == "noamount"
    assert _count(engine, transactions) == 2
    assert _count(engine, quarantine) == 3
    # The minute aggregates the dashboard reads are written with the rows.
    with engine.connect() as connection:
        paid = connection.execute(select(func.sum(minute_aggregates.c.gross_paid))).scalar_one()
    assert paid == 15_000


def test_json_lines_bodies_are_taken(push_app):
    base, engine, key = push_app
    lines = "\n".join(json.dumps(sale(f"l{i}", "P1")) for i in range(3)) + "\n\n"
    answer = push(base, key, content=lines, headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 3


def test_a_resent_request_changes_nothing_and_gets_the_first_answer(push_app):
    base, engine, key = push_app
    rows = [sale("r1", "P1", 7_000), sale("r2", "P1", 8_000), sale("bad", "P1", "x")]
    first = push(base, key, rows, headers={"Idempotency-Key": "batch-0001"})
    assert first.status_code == 200 and first.json()["accepted"] == 2
    again = push(base, key, rows, headers={"Idempotency-Key": "batch-0001"})
    assert again.status_code == 200
    assert again.json() == {**first.json(), "replayed": True}
    # The same rows under a new id: counted duplicates (the bad row quarantined again).
    renamed = push(base, key, rows, headers={"Idempotency-Key": "batch-0002"}).json()
    assert (renamed["accepted"], renamed["duplicates"], renamed["quarantined"]) == (0, 2, 1)
    # Without an Idempotency-Key the body's hash names the request.
    plain = [sale("r3", "P1")]
    assert push(base, key, plain).json()["replayed"] is False
    assert push(base, key, plain).json()["replayed"] is True
    # An id reused for other rows is refused: that is a device bug, not a resend.
    reused = push(base, key, [sale("r9", "P1")], headers={"Idempotency-Key": "batch-0001"})
    assert reused.status_code == 422
    assert _count(engine, transactions) == 3
    with engine.connect() as connection:
        total = connection.execute(select(func.sum(transactions.c.amount))).scalar_one()
    assert total == 7_000 + 8_000 + 5_000


def test_async_answer_then_the_status_url(push_app):
    base, engine, key = push_app
    answer = push(base, key, [sale("a1", "P1")], headers={"Prefer": "respond-async"})
    assert answer.status_code in (200, 202)
    url = base + answer.json().get("status_url", "/api/v1/transactions/requests/x")
    deadline = time.monotonic() + 60
    while answer.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.3)
        answer = httpx.get(url, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    other = issue_key(engine, "box 2", ["P2"], actor="test").secret
    stranger = httpx.get(url, headers={"Authorization": f"Bearer {other}"})
    assert stranger.status_code == 404  # another key cannot read this key's answers


def test_limits_are_clear_4xx_never_500(push_app):
    base, engine, key = push_app
    many = push(base, key, [sale(f"m{i}", "P1") for i in range(6)])
    assert many.status_code == 413 and "at most 5" in many.json()["error"]
    big = push(base, key, content=b"[" + b" " * 5000 + b"]")
    assert big.status_code == 413
    assert push(base, key, content=b"{not json").status_code == 400
    assert push(base, key, content=b"[1, 2]").status_code == 400
    assert push(base, key, content=b"[]").status_code == 400
    # A second key for the rest: five requests are this app's burst per key (the rate test's).
    key = issue_key(engine, "box 3", ["P1"], actor="test").secret
    assert push(base, key, content=b"\xff\xfe").status_code == 400
    wrong_type = push(base, key, [sale("t", "P1")], headers={"Content-Type": "text/csv"})
    assert wrong_type.status_code == 415
    bad_id = push(base, key, [sale("t", "P1")], headers={"Idempotency-Key": "x" * 200})
    assert bad_id.status_code == 400
    assert httpx.get(f"{base}/api/v1/transactions").status_code == 405
    assert _count(engine, transactions) == 0
    with engine.connect() as connection:
        codes = connection.execute(select(push_requests.c.status_code)).scalars().all()
    assert sorted(codes) == [400] * 5 + [413] * 2 + [415]


def test_a_key_sending_too_often_is_answered_429_with_retry_after(push_app):
    base, engine, key = push_app
    with httpx.Client(timeout=30) as client:  # one connection: requests back to back
        answers = [
            client.post(
                f"{base}/api/v1/transactions",
                content=b"[]",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            for _ in range(20)
        ]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [400] * 5  # the burst, then the rate
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(int(a.headers["Retry-After"]) >= 1 for a in limited)
    assert "requests a second" in limited[0].json()["error"]


def test_the_openapi_description_is_served_and_committed(push_app):
    base, _, _ = push_app
    served = httpx.get(f"{base}/api/v1/openapi.json").json()
    assert served == push_openapi()
    committed = json.loads((REPO_ROOT / "docs" / "push-openapi.json").read_text())
    assert committed == served, (
        "run: python -m pipeline.review.push_openapi > docs/push-openapi.json"
    )
    assert set(served["paths"]["/api/v1/transactions"]["post"]["responses"]) >= {
        "200",
        "401",
        "403",
        "413",
        "429",
    }


def test_a_pushed_sale_moves_the_dashboard_figures(push_app):
    base, engine, key = push_app
    from pipeline.casework.users import add_user

    add_user(engine, "leader", "viewer", "leader-pass", actor="test")
    with httpx.Client(base_url=base, follow_redirects=True, timeout=30) as browser:
        page = browser.get("/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        browser.post(
            "/login", data={"username": "leader", "password": "leader-pass", "csrf_token": token}
        )
        before = browser.get("/api/dashboard").json()
        assert push(base, key, [sale("d1", "P1", 45_000)]).status_code == 200
        after = browser.get("/api/dashboard").json()
        assert after["today_total"] == before["today_total"] + 45_000
        assert after["text"]["live_as_of"]
        with browser.stream("GET", "/api/dashboard/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            for line in events.iter_lines():
                if line.startswith("data: "):
                    figures = json.loads(line[6:])
                    break
        assert figures["today_total"] == after["today_total"]


def test_rows_a_day_old_are_still_taken(push_app):
    # A tapping box that was offline pushes yesterday's sales when it is back.
    base, engine, key = push_app
    yesterday = datetime.now(UTC) - timedelta(days=1)
    answer = push(base, key, [sale("late-1", "P1", when=yesterday)])
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
