"""The alerts page over HTTP on a real SQLite database, for every role: supervisors see the rule
set (whom each reaches) and the latest sends, add rules and switch them; bad input is a 400
naming the value; the others get a 403."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.alerts import list_rules
from pipeline.alerts.deliveries import claim, finish
from pipeline.casework.users import ensure_demo_users, set_email
from pipeline.core.settings import Settings
from pipeline.review import create_app
from pipeline.store import connect
from tests.helpers.review_client import app_on_a_copy, as_role, role_cookies

SETTINGS = Settings(secret_key="test-key")
ROLES = ("viewer", "auditor", "ops", "supervisor")


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("review-alerts") / "eincome.db"
    engine = connect(f"sqlite:///{path}")
    ensure_demo_users(engine)
    set_email(engine, "supervisor", "sari@pemkab.test", actor="test")
    now = datetime.now(UTC)
    sent = claim(engine, rule_id=1, what="case", subject_key="case:7", recipient="user:supervisor",
                 address="sari@pemkab.test", channel="email", title="Kasus #7", now=now)  # fmt: skip
    finish(engine, sent, error=None, now=now)
    failed = claim(engine, rule_id=3, what="failure", subject_key="failure:2", recipient="user:ops",
                   address="x@y.id", channel="email", title="Kegagalan", now=now)  # fmt: skip
    finish(engine, failed, error="SMTP refused", now=now)
    cookies = role_cookies(create_app(engine, SETTINGS))
    engine.dispose()
    return path, cookies


@pytest.fixture
def site(template_db, tmp_path):
    path, cookies = template_db
    with app_on_a_copy(path, cookies, tmp_path, SETTINGS) as (app, engine):
        yield app, engine


@pytest.mark.parametrize("role", ROLES)
def test_only_supervisors_manage_alerts(site, role):
    app, engine = site
    client, token = as_role(app, role)
    allowed = role == "supervisor"
    page = client.get("/alerts")
    assert page.status_code == (200 if allowed else 403)
    assert ('href="/alerts"' in client.get("/dashboard").text) is allowed
    added = client.post(
        "/alerts/rules",
        data={"name": "x", "event": "failure", "to_role": "ops", "csrf_token": token},
    )
    switched = client.post(
        "/alerts/rules/switch",
        data={"name": "pipeline failures to ops", "active": "0", "csrf_token": token},
    )
    assert (added.status_code, switched.status_code) == ((303, 303) if allowed else (403, 403))
    names = {r.name: r.active for r in list_rules(engine)}
    assert ("x" in names) is allowed and names["pipeline failures to ops"] is not allowed


def test_the_page_shows_whom_each_rule_reaches_and_the_latest_sends(site):
    app, _ = site
    client, _ = as_role(app, "supervisor")
    page = client.get("/alerts").text
    rules = page.split('id="alert-rules"')[1].split("</table>")[0]
    high = rules.split('data-rule="high cases to supervisors"')[1].split("</tr>")[0]
    assert "tinggi atau lebih tinggi" in high and "setiap supervisor" in high
    assert "<td>supervisor</td>" in high  # the supervisor has an address
    silent = rules.split('data-rule="silent points to ops"')[1].split("</tr>")[0]
    assert "2 jam buka tanpa transaksi" in silent and "tanpa alamat e-mail: ops" in silent
    sends = page.split('id="alert-sends"')[1].split("</table>")[0]
    assert "Kasus #7" in sends and "terkirim" in sends
    assert "gagal, dicoba lagi pada run berikutnya: SMTP refused" in sends


def test_a_supervisor_adds_a_channel_rule_and_switches_it_off(site):
    app, engine = site
    client, token = as_role(app, "supervisor")
    form = {"name": "chat", "event": "case", "severity": "medium",
            "to_channel": "json://127.0.0.1:9/hooks/eincome", "csrf_token": token}  # fmt: skip
    assert client.post("/alerts/rules", data=form).status_code == 303
    page = client.get("/alerts").text
    assert "Aturan chat ditambahkan." in page and "<code>json://…/eincome</code>" in page
    assert "127.0.0.1:9" not in page  # a channel URL may hold a token: never shown whole
    [chat] = [r for r in list_rules(engine) if r.name == "chat"]
    assert (chat.min_severity, chat.to_channel, chat.active) == (
        "medium",
        "json://127.0.0.1:9/hooks/eincome",
        True,
    )
    off = client.post(
        "/alerts/rules/switch", data={"name": "chat", "active": "0", "csrf_token": token}
    )
    assert off.status_code == 303 and "Aturan chat dimatikan." in client.get("/alerts").text
    assert not [r for r in list_rules(engine) if r.name == "chat"][0].active


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"name": "a", "event": "sms", "to_role": "ops"}, "peristiwa &#39;sms&#39;"),
        ({"name": "a", "event": "silence", "silent_hours": "two", "to_role": "ops"}, "&#39;two&#39;"),
        ({"name": "a", "event": "silence", "silent_hours": "500", "to_role": "ops"}, "500"),
        ({"name": "a", "event": "case", "to_user": "nobody"}, "pengguna &#39;nobody&#39; tidak ada"),
        ({"name": "a", "event": "case"}, "tepat satu dari peran, pengguna, atau URL kanal"),
        ({"name": "high cases to supervisors", "event": "case", "to_role": "ops"}, "sudah ada"),
    ],
)  # fmt: skip
def test_a_rule_that_cannot_work_is_a_4xx_naming_the_value(site, form, said):
    app, engine = site
    client, token = as_role(app, "supervisor")
    before = len(list_rules(engine))
    response = client.post("/alerts/rules", data={**form, "csrf_token": token})
    assert 400 <= response.status_code < 500 and said in response.text, response.text[-800:]
    assert len(list_rules(engine)) == before


def test_switching_an_unknown_rule_or_to_a_bad_state_is_a_4xx(site):
    app, _ = site
    client, token = as_role(app, "supervisor")
    missing = client.post(
        "/alerts/rules/switch", data={"name": "nope", "active": "1", "csrf_token": token}
    )
    assert (
        missing.status_code == 404 and "aturan peringatan &#39;nope&#39; tidak ada" in missing.text
    )
    bad = client.post(
        "/alerts/rules/switch",
        data={"name": "silent points to ops", "active": "yes", "csrf_token": token},
    )
    assert bad.status_code == 400 and "&#39;yes&#39; bukan 0 atau 1" in bad.text


def test_a_supervisor_sets_where_alerts_reach_a_user_on_the_users_page(site):
    from pipeline.casework.users import contacts

    app, engine = site
    client, token = as_role(app, "supervisor")
    done = client.post("/users/ops/email", data={"email": "oki@pemkab.test", "csrf_token": token})
    assert done.status_code == 303
    page = client.get("/users").text
    assert "Peringatan untuk ops dikirim ke oki@pemkab.test." in page
    assert 'value="oki@pemkab.test"' in page
    trail = page.split('id="user-trail"')[1]
    assert "alamat e-mail diatur" in trail and "e-mail: oki@pemkab.test" in trail
    assert {c.username: c.email for c in contacts(engine)}["ops"] == "oki@pemkab.test"
    # ... and the alerts page now counts ops as reached
    silent = client.get("/alerts").text.split('data-rule="silent points to ops"')[1]
    assert "tanpa alamat e-mail" not in silent.split("</tr>")[0]
    bad = client.post("/users/ops/email", data={"email": "oki at pemkab", "csrf_token": token})
    assert bad.status_code == 400 and "&#39;oki at pemkab&#39; tidak valid" in bad.text
    auditor, auditor_token = as_role(app, "auditor")
    refused = auditor.post(
        "/users/ops/email", data={"email": "a@b.id", "csrf_token": auditor_token}
    )
    assert refused.status_code == 403
    assert {c.username: c.email for c in contacts(engine)}["ops"] == "oki@pemkab.test"
