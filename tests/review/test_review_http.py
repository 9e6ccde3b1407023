"""The review app over HTTP (FastAPI TestClient) on a real seeded SQLite database: every role's
rights, CSRF, the append-only audit trail (also at the database level, on SQLite and PostgreSQL),
feedback to detection, exports that parse back, error pages without stack traces."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from pipeline.casework import audit
from pipeline.casework.throttle import LoginThrottle
from pipeline.casework.users import (
    User,
    add_user,
    ensure_demo_users,
    get_user,
    set_active,
)
from pipeline.core.settings import Settings
from pipeline.review import create_app
from pipeline.review.app import SESSION_COOKIE
from pipeline.review.exports import QUEUE_COLUMNS
from pipeline.review.queries import QueueFilter
from pipeline.store import connect
from pipeline.store.schema import case_events, cases, review_sessions, suppressions
from tests.helpers.review_client import app_on_a_copy
from tests.helpers.review_seed import seed

PASSWORDS = {"demo": "demo", "supervisor": "supervisor", "ops": "ops", "leader": "leader",
             "alice": "alice-password"}  # fmt: skip
ROLE_USER = {"auditor": "demo", "supervisor": "supervisor", "ops": "ops", "viewer": "leader"}


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """Seed once; every test gets its own copy of the file (a copy is much cheaper than a seed).

    Each role signs in once here, through the form: the copies hold those server-side sessions,
    so a test reuses its role's cookie and spares an argon2 hash.
    """
    path = tmp_path_factory.mktemp("review-template") / "eincome.db"
    engine = connect(f"sqlite:///{path}")
    world = seed(engine, extra_cases=55)
    ensure_demo_users(engine)
    add_user(engine, "alice", "auditor", "alice-password", actor="test")
    app = create_app(engine, SETTINGS)
    cookies = {role: sign_in(app, name).cookies[SESSION_COOKIE] for role, name in ROLE_USER.items()}
    engine.dispose()  # closes the last connection, so SQLite folds the WAL into the file
    return path, world, cookies


SETTINGS = Settings(secret_key="test-key", false_alarm_days=7)


@pytest.fixture
def site(template_db, tmp_path):
    path, world, cookies = template_db
    with app_on_a_copy(path, cookies, tmp_path, SETTINGS) as (app, engine):
        yield app, engine, world


def client_for(app, address: str = "testclient") -> TestClient:
    return TestClient(
        app, raise_server_exceptions=False, follow_redirects=False, client=(address, 50000)
    )


def csrf_from(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def try_password(client: TestClient, username: str, password: str):
    token = csrf_from(client, "/login")
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def sign_in(app, username: str, address: str = "testclient") -> TestClient:
    client = client_for(app, address)
    response = try_password(client, username, PASSWORDS[username])
    assert response.status_code == 303, response.text
    return client


def as_role(app, role: str) -> tuple[TestClient, str]:
    """A signed-in client for ``role`` (its session made in ``template_db``) and its CSRF token."""
    client = client_for(app)
    client.cookies.set(SESSION_COOKIE, app.state.role_cookies[role])
    return client, csrf_from(client, "/dashboard")


def case_state(engine, case_id: int) -> tuple[str, str | None, int]:
    with engine.connect() as connection:
        status, assignee = connection.execute(
            select(cases.c.status, cases.c.assignee).where(cases.c.case_id == case_id)
        ).one()
        events = connection.execute(
            select(func.count()).where(case_events.c.case_id == case_id)
        ).scalar()
    return status, assignee, events


# ----------------------------------------------------------------------------- sign-in, sessions


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/cases",
        "/cases/1",
        "/cases/export.csv",
        "/dashboard",
        "/api/dashboard",
        "/ops",
        "/users",
    ],
)
def test_anonymous_is_sent_to_login(site, path):
    app, _, _ = site
    response = client_for(app).get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_anonymous_post_is_refused_and_changes_nothing(site):
    app, engine, world = site
    client = client_for(app)
    token = csrf_from(client, "/login")  # even with a token of an anonymous session
    response = client.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "false_alarm", "note": "x", "csrf_token": token},
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert case_state(engine, world.case_id) == ("open", None, 0)


def test_session_cookie_is_httponly_and_samesite(site):
    app, _, _ = site
    client = client_for(app)
    token = csrf_from(client, "/login")
    response = client.post(
        "/login", data={"username": "demo", "password": "demo", "csrf_token": token}
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_session_cookie_is_secure_when_served_over_tls(site):
    _, engine, _ = site
    app = create_app(engine, Settings(secret_key="test-key", secure_cookies=1))
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    cookie = client.get("/login").headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie


def test_wrong_password_is_refused(site):
    app, _, _ = site
    client = client_for(app)
    token = csrf_from(client, "/login")
    response = client.post(
        "/login", data={"username": "demo", "password": "wrong", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "Nama pengguna atau kata sandi salah" in response.text
    assert client.get("/cases").status_code == 303


def test_login_redirect_stays_on_this_site(site):
    app, _, _ = site
    client = client_for(app)
    token = csrf_from(client, "/login")
    response = client.post(
        "/login",
        data={
            "username": "demo",
            "password": "demo",
            "csrf_token": token,
            "next": "//evil.example/",
        },
    )
    assert response.headers["location"] == "/"


def test_deactivated_user_is_signed_out_at_once(site):
    app, engine, _ = site
    client, _ = as_role(app, "auditor")
    assert client.get("/cases").status_code == 200
    set_active(engine, "demo", False, actor="supervisor")
    assert client.get("/cases").status_code == 303


def test_logout_ends_the_session(site):
    app, _, _ = site
    client = sign_in(app, "demo")
    token = csrf_from(client, "/cases")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/cases").status_code == 303


def _copy_of(app, client: TestClient) -> TestClient:
    thief = client_for(app, "10.0.0.66")
    thief.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE])
    return thief


def test_sign_out_ends_a_copied_cookie(site):
    app, engine, world = site
    client = sign_in(app, "demo")
    thief = _copy_of(app, client)
    stolen_token = csrf_from(thief, f"/cases/{world.case_id}")  # the copy works before sign-out
    assert (
        client.post("/logout", data={"csrf_token": csrf_from(client, "/cases")}).status_code == 303
    )
    stolen = thief.cookies[SESSION_COOKIE]
    assert thief.get("/cases").headers["location"].startswith("/login")
    thief.cookies.set(SESSION_COOKIE, stolen)  # a thief ignores the server clearing the cookie
    response = thief.post(
        f"/cases/{world.case_id}/note", data={"note": "as demo", "csrf_token": stolen_token}
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert case_state(engine, world.case_id) == ("open", None, 0)


@pytest.mark.parametrize(
    "change",
    [("password", {"password": "a-new-password"}), ("role", {"role": "ops"}),
     ("active", {"active": "0"})],
    ids=["password reset", "role change", "deactivation"],
)  # fmt: skip
def test_a_change_to_a_user_ends_their_sessions(site, change):
    app, _, _ = site
    alice = sign_in(app, "alice")
    assert alice.get("/dashboard").status_code == 200
    supervisor, token = as_role(app, "supervisor")
    action, form = change
    response = supervisor.post(f"/users/alice/{action}", data={**form, "csrf_token": token})
    assert response.status_code == 303, response.text
    assert alice.get("/dashboard").headers["location"].startswith("/login")
    assert supervisor.get("/users").status_code == 200, "the supervisor's own session lives on"


def test_reactivation_never_revives_an_old_cookie(site):
    app, _, _ = site
    alice = sign_in(app, "alice")
    supervisor, token = as_role(app, "supervisor")
    for active in ("0", "1"):
        supervisor.post("/users/alice/active", data={"active": active, "csrf_token": token})
    assert alice.get("/dashboard").headers["location"].startswith("/login")
    assert sign_in(app, "alice").get("/dashboard").status_code == 200, "a new sign-in works"


def _age_sessions(engine, **ages: timedelta) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            update(review_sessions)
            .where(review_sessions.c.username == "alice")
            .values(**{column: now - age for column, age in ages.items()})
        )


def test_sessions_end_when_idle_and_at_their_absolute_limit(site):
    app, engine, _ = site
    alice = sign_in(app, "alice")
    _age_sessions(engine, last_seen_at=timedelta(minutes=45))  # idle limit 60 min: renewed
    assert alice.get("/dashboard").status_code == 200
    with engine.connect() as connection:
        seen = connection.execute(select(review_sessions.c.last_seen_at)
                                  .where(review_sessions.c.username == "alice")).scalar()  # fmt: skip
    assert datetime.now(UTC) - seen < timedelta(minutes=1)
    _age_sessions(engine, created_at=timedelta(hours=12), last_seen_at=timedelta(minutes=1))
    assert alice.get("/dashboard").headers["location"].startswith("/login"), "absolute limit"
    alice = sign_in(app, "alice")
    _age_sessions(engine, last_seen_at=timedelta(minutes=61))
    assert alice.get("/dashboard").headers["location"].startswith("/login"), "idle limit"


def test_sign_in_cookie_lasts_the_absolute_limit_and_is_not_renewed_by_pages(site):
    app, _, _ = site
    client = client_for(app)
    response = try_password(client, "alice", "alice-password")
    assert "max-age=43200" in response.headers["set-cookie"].lower()  # session_hours=12
    assert "set-cookie" not in client.get("/dashboard").headers


def test_a_refused_cross_site_post_sets_no_cookie(site):
    """The browser sends no cookie with a cross-site POST (SameSite=lax): the refusal page must
    not answer with a fresh session cookie, which would sign the real user out."""
    app, _, world = site
    client, _ = as_role(app, "auditor")
    cross_site = client_for(app)
    response = cross_site.post(f"/cases/{world.case_id}/decide", data={"decision": "confirmed"})
    assert response.status_code == 403 and "set-cookie" not in response.headers
    response = client.post(f"/cases/{world.case_id}/decide", data={"decision": "confirmed"})
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert client.get("/cases").status_code == 200, "still signed in"
    for path in ("/no/such/page", "/cases/999999"):
        assert "set-cookie" not in client_for(app).get(path).headers


def test_a_strangers_wrong_passwords_do_not_lock_out_the_user(site):
    app, _, _ = site
    app.state.login_throttle = LoginThrottle(app.state.engine, base=0.05, cap=0.4)
    stranger = client_for(app, "10.0.0.66")
    for _ in range(5):
        assert try_password(stranger, "DEMO", "guess").status_code == 401
    started = time.monotonic()
    real = sign_in(app, "demo", address="10.0.0.7")
    assert time.monotonic() - started < 2
    assert real.get("/cases").status_code == 200
    # from the stranger's own address the right password is still taken, only later
    assert try_password(stranger, "demo", "demo").status_code == 303


def test_a_client_trying_many_usernames_is_slowed(site):
    app, _, _ = site
    app.state.login_throttle = LoginThrottle(app.state.engine, free=3, base=1.5, cap=3.0)
    client = client_for(app, "10.0.0.99")
    token = csrf_from(client, "/login")
    took = []
    for name in ["ani", "bayu", "citra", "dedi", "eka", "fajar", "gita"]:
        started = time.monotonic()
        response = client.post(
            "/login", data={"username": name, "password": "guess", "csrf_token": token}
        )
        took.append(time.monotonic() - started)
        assert response.status_code == 401
    # the first tries cost one password check; then each waits, up to the cap (a floor: the
    # wait comes on top of the check, however loaded the machine)
    assert min(took[-2:]) >= 3.0 and max(took[:3]) < 3.0, took
    assert app.state.login_throttle.failures("10.0.0.99", "gita", datetime.now(UTC)) == (7, 1)


def test_users_page_shows_who_changed_whom(site):
    app, _, _ = site
    supervisor, token = as_role(app, "supervisor")
    supervisor.post("/users/alice/role", data={"role": "supervisor", "csrf_token": token})
    supervisor.post("/users/alice/password", data={"password": "x" * 12, "csrf_token": token})
    trail = supervisor.get("/users").text.split('id="user-trail"')[1]
    assert re.search(r"<td>supervisor</td><td>alice</td><td>peran diubah</td>", trail)
    assert "peran: auditor" in trail and "peran: supervisor" in trail
    assert re.search(r"<td>supervisor</td><td>alice</td><td>kata sandi diatur ulang</td>", trail)
    assert "$argon2" not in trail


@pytest.mark.parametrize("written_as", ["supervisor", "SUPERVISOR", "Supervisor"])
def test_a_supervisor_cannot_change_their_own_role_or_access(site, written_as):
    app, engine, _ = site
    client, token = as_role(app, "supervisor")
    response = client.post(
        f"/users/{written_as}/role", data={"role": "viewer", "csrf_token": token}
    )
    assert response.status_code == 400 and "mengubah peran Anda sendiri" in response.text
    response = client.post(f"/users/{written_as}/active", data={"active": "0", "csrf_token": token})
    assert response.status_code == 400 and "menonaktifkan diri sendiri" in response.text
    assert client.get("/users").status_code == 200
    assert get_user(engine, "supervisor").role == "supervisor"


# ----------------------------------------------------------------------------- rights

PAGES = ["/cases", "/cases/{case}", "/cases/export.csv", "/cases/{case}/export.xlsx", "/ops",
         "/ops/batches/1", "/users", "/dashboard", "/api/dashboard"]  # fmt: skip
ALLOWED_PAGES = {
    "viewer": {"/dashboard", "/api/dashboard"},
    "ops": {"/dashboard", "/api/dashboard", "/ops", "/ops/batches/1"},
    "auditor": {
        "/dashboard",
        "/api/dashboard",
        "/cases",
        "/cases/{case}",
        "/cases/export.csv",
        "/cases/{case}/export.xlsx",
    },  # fmt: skip
    "supervisor": set(PAGES),
}


@pytest.mark.parametrize("role", list(ALLOWED_PAGES))
def test_each_role_sees_only_its_pages(site, role):
    app, _, world = site
    client, _ = as_role(app, role)
    for page in PAGES:
        response = client.get(page.format(case=world.case_id))
        expected = 200 if page in ALLOWED_PAGES[role] else 403
        assert response.status_code == expected, (role, page, response.status_code)
        if expected == 403:
            assert "Tidak diizinkan" in response.text


@pytest.mark.parametrize("role", ["viewer", "ops"])
def test_viewer_and_ops_cannot_decide_assign_or_reopen(site, role):
    app, engine, world = site
    client, token = as_role(app, role)
    for action, data in [
        ("decide", {"decision": "false_alarm", "note": "not mine to say"}),
        ("assign", {"assignee": "alice"}),
        ("reopen", {"note": "again"}),
        ("note", {"note": "a remark"}),
    ]:
        response = client.post(
            f"/cases/{world.case_id}/{action}", data={**data, "csrf_token": token}
        )
        assert response.status_code == 403, (role, action)
    assert case_state(engine, world.case_id) == ("open", None, 0)


def test_auditor_cannot_reopen_or_manage_users(site):
    app, engine, world = site
    client, token = as_role(app, "auditor")
    before = case_state(engine, world.decided_case_id)
    response = client.post(
        f"/cases/{world.decided_case_id}/reopen", data={"note": "please", "csrf_token": token}
    )
    assert response.status_code == 403
    assert case_state(engine, world.decided_case_id) == before
    response = client.post(
        "/users",
        data={
            "username": "mallory",
            "role": "supervisor",
            "password": "x" * 12,
            "csrf_token": token,
        },
    )
    assert response.status_code == 403
    page = client.get(f"/cases/{world.decided_case_id}").text
    assert 'id="reopen-form"' not in page and 'id="decide-form"' not in page
    assert "Hanya supervisor yang dapat membukanya kembali" in page


def test_auditor_decides_and_assigns_supervisor_reopens(site):
    app, engine, world = site
    auditor, token = as_role(app, "auditor")
    response = auditor.post(
        f"/cases/{world.case_id}/assign", data={"assignee": "alice", "csrf_token": token}
    )
    assert response.status_code == 303
    response = auditor.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "field_check", "note": "send someone", "csrf_token": token},
    )
    assert response.status_code == 303
    response = auditor.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "confirmed", "note": "field check found it", "csrf_token": token},
    )
    assert response.status_code == 303
    assert case_state(engine, world.case_id) == ("confirmed", "alice", 3)
    # decided: a second decision needs a reopen first
    response = auditor.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "false_alarm", "note": "changed my mind", "csrf_token": token},
    )
    assert response.status_code == 400 and "supervisor harus membukanya kembali" in response.text

    supervisor, token = as_role(app, "supervisor")
    response = supervisor.post(
        f"/cases/{world.case_id}/reopen", data={"note": "evidence was wrong", "csrf_token": token}
    )
    assert response.status_code == 303
    assert case_state(engine, world.case_id) == ("open", "alice", 4)
    response = supervisor.post(
        f"/cases/{world.case_id}/note", data={"note": "called the lot owner", "csrf_token": token}
    )
    assert response.status_code == 303
    assert case_state(engine, world.case_id) == ("open", "alice", 5)
    page = supervisor.get(f"/cases/{world.case_id}").text
    trail = page.split('id="audit-trail"')[1]
    for actor, action in [  # the actions as the Indonesian page names them
        ("demo", "ditugaskan"),
        ("demo", "keputusan"),
        ("supervisor", "dibuka kembali"),
        ("supervisor", "catatan"),
    ]:
        assert re.search(rf"<td>{actor}</td><td>{action}</td>", trail), (actor, action)
    assert "evidence was wrong" in trail


def test_supervisor_manages_users(site):
    app, _, _ = site
    client, token = as_role(app, "supervisor")
    response = client.post(
        "/users",
        data={"username": "budi", "role": "ops", "password": "budi-password", "csrf_token": token},
    )
    assert response.status_code == 303
    assert "budi" in client.get("/users").text
    budi = client_for(app)
    login_token = csrf_from(budi, "/login")
    response = budi.post(
        "/login",
        data={"username": "budi", "password": "budi-password", "csrf_token": login_token},
    )
    assert response.status_code == 303
    assert budi.get("/ops").status_code == 200
    # a short password is refused with a message, not a stack trace
    response = client.post(
        "/users", data={"username": "eko", "role": "ops", "password": "short", "csrf_token": token}
    )
    assert response.status_code == 400 and "kata sandi terlalu pendek" in response.text


# ----------------------------------------------------------------------------- CSRF


def test_forms_without_the_session_token_are_refused(site):
    app, engine, world = site
    client, token = as_role(app, "auditor")
    other, other_token = as_role(app, "supervisor")
    url = f"/cases/{world.case_id}/decide"
    form = {"decision": "false_alarm", "note": "market day"}
    assert client.post(url, data=form).status_code == 403
    assert client.post(url, data={**form, "csrf_token": "forged"}).status_code == 403
    assert client.post(url, data={**form, "csrf_token": other_token}).status_code == 403
    assert "Formulir ditolak" in client.post(url, data=form).text
    assert case_state(engine, world.case_id) == ("open", None, 0)
    assert client.post(url, data={**form, "csrf_token": token}).status_code == 303
    assert case_state(engine, world.case_id)[0] == "false_alarm"


def test_every_form_route_refuses_a_post_without_the_token(site):
    app, engine, world = site
    client, _ = as_role(app, "supervisor")  # holds every right: only the token is missing
    # The push API (/api/v1/) takes no session cookie, only an API key: no form, no token.
    posts = [
        r.path
        for r in app.routes
        if "POST" in (getattr(r, "methods", None) or ()) and not r.path.startswith("/api/v1/")
    ]
    assert len(posts) >= 9
    for path in posts:
        url = path.format(case_id=world.case_id, username="alice", prefix="0123456789ab")
        response = client.post(url, data={"note": "x", "decision": "confirmed", "role": "ops"})
        assert response.status_code == 403 and "Formulir ditolak" in response.text, path
    assert case_state(engine, world.case_id) == ("open", None, 0)


def test_login_form_needs_its_token(site):
    app, _, _ = site
    client = client_for(app)
    response = client.post("/login", data={"username": "demo", "password": "demo"})
    assert response.status_code == 403
    assert client.get("/cases").status_code == 303


# ------------------------------------------------------------------ audit trail, feedback


def test_app_offers_no_way_to_edit_the_audit_trail(site):
    app, _, world = site
    for route in app.routes:
        methods = getattr(route, "methods", set()) or set()
        assert not methods & {"PUT", "PATCH", "DELETE"}, route.path
        assert "trail" not in route.path, route.path
        # The dashboard's live stream (GET only) is the one path naming events.
        assert "event" not in route.path or methods <= {"GET", "HEAD"}, route.path
        assert "event" not in route.path or not route.path.startswith("/cases"), route.path
    client, token = as_role(app, "supervisor")
    for method in ("post", "put", "delete"):
        response = getattr(client, method)(f"/cases/{world.case_id}/events/1")
        assert response.status_code in (403, 404, 405)


def test_case_events_refuse_update_and_delete_in_the_database(engine):
    """On SQLite and PostgreSQL: the triggers of migration 0002_review."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        case_id = connection.execute(
            cases.insert().values(
                point_id="P1",
                start_at=now - timedelta(hours=2),
                end_at=now - timedelta(hours=1),
                kind="low_revenue",
                score=0.6,
                severity="low",
                reasons="r",
                shortfall_rp=1000,
                status="open",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
    audit.decide(engine, case_id, User("demo", "auditor"), "false_alarm", "ok", false_alarm_days=30)
    for statement in (
        update(case_events).values(note="rewritten"),
        update(case_events).values(actor="someone else"),
        case_events.delete(),
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(statement)
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("TRUNCATE case_events CASCADE"))
    trail = audit.trail(engine, case_id)
    assert [(e.actor, e.action, e.note) for e in trail] == [("demo", "decide", "ok")]
    # appending still works
    audit.reopen(engine, case_id, User("boss", "supervisor"), "wrong call")
    assert len(audit.trail(engine, case_id)) == 2


def test_false_alarm_suppresses_the_same_kind_at_that_point(site):
    app, engine, world = site
    client, token = as_role(app, "auditor")
    before = datetime.now(UTC)
    response = client.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "false_alarm", "note": "road works closed the lot", "csrf_token": token},
    )
    assert response.status_code == 303
    with engine.connect() as connection:
        rows = connection.execute(select(suppressions)).all()
        case = connection.execute(select(cases).where(cases.c.case_id == world.case_id)).one()
    assert len(rows) == 1
    row = rows[0]
    assert (row.point_id, row.kind, row.created_by) == ("PKR-001", "low_revenue", "demo")
    assert row.starts_at == case.start_at
    # Settings(false_alarm_days=7) in the fixture: the period is the configured one
    assert before + timedelta(days=7) <= row.ends_at <= datetime.now(UTC) + timedelta(days=7)
    assert "road works" in row.reason

    supervisor, token = as_role(app, "supervisor")
    supervisor.post(
        f"/cases/{world.case_id}/reopen", data={"note": "it was theft", "csrf_token": token}
    )
    with engine.connect() as connection:
        ended = connection.execute(select(suppressions.c.ends_at)).scalar()
    assert ended <= datetime.now(UTC), "reopening a false alarm ends its suppression"


def test_confirmed_leakage_windows_for_the_detector(site):
    _, engine, world = site
    windows = audit.confirmed_leakage_windows(engine)
    assert [w.point_id for w in windows] == ["PSR-002"]
    audit.decide(
        engine, world.case_id, User("demo", "auditor"), "confirmed", "theft", false_alarm_days=30
    )
    windows = audit.confirmed_leakage_windows(engine, ["PKR-001"])
    assert len(windows) == 1 and windows[0].end_at - windows[0].start_at == timedelta(hours=3)


# ----------------------------------------------------------------------------- queue, exports


def test_queue_is_filtered_ordered_and_paged(site):
    app, _, world = site
    client, _ = as_role(app, "auditor")
    first = client.get("/cases").text
    assert "halaman 1 dari 2" in first
    ids = [int(x) for x in re.findall(r"<td><a href=\"/cases/(\d+)\">\d+</a>", first)]
    assert len(ids) == 50
    # newest day first: the hotel reconciliation gap (yesterday) leads, then the restaurant case
    assert ids[:2] == [world.case_ids[3], world.case_ids[2]]
    second = client.get("/cases?page=2").text
    assert len(re.findall(r"<td><a href=\"/cases/(\d+)\">\d+</a>", second)) == 58 - 50
    selatan = client.get("/cases?district=Selatan&status=").text
    assert re.findall(r"<td><a href=\"/cases/(\d+)\">\d+</a>", selatan)[0] == str(world.case_ids[3])
    table = selatan.split('<table class="queue">')[1]
    assert "Rumah Makan" not in table and "Hotel Melati" in table
    assert client.get("/cases?date_from=yesterday").status_code == 400


def test_queue_exports_parse_back(site):
    app, _, _ = site
    client, token = as_role(app, "auditor")
    query = "severity=medium&status="
    page = client.get(f"/cases?{query}").text
    expected = sorted(int(x) for x in re.findall(r"<td><a href=\"/cases/(\d+)\">\d+</a>", page))
    response = client.get(f"/cases/export.csv?{query}")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    # the file is named in the regency's time, with the zone: kasus-20261201-1755-WIB.csv
    assert re.search(
        r'filename="kasus-\d{8}-\d{4}-WIB\.csv"', response.headers["content-disposition"]
    )
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header = rows[0]
    assert len(header) == len(QUEUE_COLUMNS) and header[0] == "Kasus"
    assert "Mulai (WIB)" in header and "Diputuskan oleh" in header  # Indonesian, zone named
    assert sorted(int(r[0]) for r in rows[1:]) == expected
    assert {r[QUEUE_COLUMNS.index("severity")] for r in rows[1:]} == {"sedang"}

    response = client.get(f"/cases/export.xlsx?{query}")
    book = load_workbook(io.BytesIO(response.content))
    sheet = book["Kasus"]
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0] == header
    assert sorted(r[0] for r in cells[1:]) == expected
    shortfall = QUEUE_COLUMNS.index("shortfall_rp") + 1
    assert {r[shortfall - 1] for r in cells[1:]} >= {1_250_000}
    assert sheet.freeze_panes == "A2"
    assert sheet.cell(row=2, column=shortfall).number_format == '"Rp" #,##0'
    start = sheet.cell(row=2, column=QUEUE_COLUMNS.index("start_local") + 1)
    assert isinstance(start.value, datetime) and start.is_date  # a real date, not text
    assert sheet.column_dimensions["A"].width >= 8


def test_queue_export_carries_the_decisions(site):
    app, _, world = site
    client, token = as_role(app, "auditor")
    client.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "field_check", "note": "ask the lot owner", "csrf_token": token},
    )
    book = load_workbook(io.BytesIO(client.get("/cases/export.xlsx?status=").content))
    rows = {r[0]: r for r in book["Kasus"].iter_rows(min_row=2, values_only=True)}
    row = rows[world.case_id]
    assert row[QUEUE_COLUMNS.index("status")] == "perlu cek lapangan"
    assert row[QUEUE_COLUMNS.index("decided_by")] == "demo"
    assert isinstance(row[QUEUE_COLUMNS.index("decided_at")], datetime)
    assert row[QUEUE_COLUMNS.index("decision_note")] == "ask the lot owner"


def test_case_exports_parse_back_with_transactions_and_trail(site):
    app, engine, world = site
    with engine.begin() as connection:  # a feed-supplied value that Excel would run
        connection.execute(
            update(cases)
            .where(cases.c.case_id == world.case_id)
            .values(operators='=HYPERLINK("http://evil.example","x")')
        )
    client, token = as_role(app, "auditor")
    client.post(
        f"/cases/{world.case_id}/decide",
        data={"decision": "confirmed", "note": "voids", "csrf_token": token},
    )
    response = client.get(f"/cases/{world.case_id}/export.xlsx")
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Kasus", "Jam yang ditandai", "Transaksi", "Jejak audit"]
    summary = {r[0]: r[1] for r in book["Kasus"].iter_rows(min_row=2, values_only=True)}
    assert summary["Kasus"] == world.case_id and summary["Perkiraan kekurangan"] == 412_000
    assert summary["Yang hilang"] == "penjualan tidak tercatat"
    assert summary["Operator"].startswith("'=")
    txns = list(book["Transaksi"].iter_rows(values_only=True))
    assert len(txns) == 1 + 82 and {t[3] for t in txns[1:]} == {"dibayar", "batal", "pengembalian"}
    assert isinstance(txns[1][0], datetime) and txns[0][0] == "Waktu (WIB)"
    hours = list(book["Jam yang ditandai"].iter_rows(values_only=True))
    assert len(hours) == 1 + 3 and sum(h[4] for h in hours[1:]) == 412_000  # sums to the case
    trail = list(book["Jejak audit"].iter_rows(values_only=True))
    assert trail[0][0] == "Waktu (WIB)" and isinstance(trail[1][0], datetime)
    assert trail[1][1:3] == ("demo", "keputusan") and trail[1][5] == "voids"
    assert book["Jejak audit"].freeze_panes == "A2"

    response = client.get(f"/cases/{world.case_id}/export.csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    sections = [r[0] for r in rows if r and r[0].startswith("# ")]
    assert sections == ["# Kasus", "# Jam yang ditandai", "# Transaksi", "# Jejak audit"]
    start = rows.index(["# Transaksi"])
    assert rows[start + 1][:3] == ["Waktu (WIB)", "Transaksi", "Jumlah"]
    assert len([r for r in rows[start + 2 :] if r and r[0] and not r[0].startswith("#")]) >= 82


def test_english_exports_say_it_in_english(site):
    app, _, world = site
    client, _ = as_role(app, "auditor")
    client.cookies.set("eincome_lang", "en")
    rows = list(
        csv.reader(io.StringIO(client.get("/cases/export.csv").content.decode("utf-8-sig")))
    )
    assert rows[0][0] == "Case" and "Start (WIB)" in rows[0]


# ------------------------------------------------------------------ dashboard, ops, errors


def test_dashboard_figures(site):
    app, _, world = site
    client, _ = as_role(app, "viewer")
    figures = client.get(f"/api/dashboard?day={world.day.isoformat()}").json()
    assert figures["today_total"] == world.day_total_rp
    assert figures["last_week_same_time"] == world.compare_total_rp
    assert sum(v for v in figures["hour"]["today"] if v) == world.day_total_rp
    assert figures["minute"]["today"][-1] == world.day_total_rp  # cumulative
    assert sum(r["today"] for r in figures["by_district"]) == world.day_total_rp
    assert {r["name"] for r in figures["by_revenue_type"]} == {
        "parking",
        "market",
        "restaurant_tax",
        "hotel_tax",
    }
    assert figures["open_cases"] == 3 + 55  # main, restaurant, hotel + the paging ones
    # no data today in the seeded world: the latest day is shown, and the page says so
    default = client.get("/api/dashboard").json()
    assert default["day"] == world.day.isoformat() and "latest day" in default["note"]


def test_ops_page_shows_failures_and_quarantine(site):
    app, _, _ = site
    client, _ = as_role(app, "ops")
    page = client.get("/ops").text
    assert "HTTP 503" in page and "landing:kota" in page and "api:tapbox" in page
    batch = client.get("/ops/batches/1").text
    assert "is negative" in batch and "ZZZ-999" in batch and "&#34;-5000&#34;" in batch


def test_errors_show_a_page_not_a_stack_trace(site):
    app, _, _ = site

    def boom():
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    client, _ = as_role(app, "auditor")
    response = client.get("/boom")
    assert response.status_code == 500
    assert "Terjadi kesalahan" in response.text
    assert "Traceback" not in response.text and "secret internals" not in response.text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "Tidak ditemukan" in missing.text
    bad = client.get("/cases/999999")
    assert bad.status_code == 404 and "kasus 999999 tidak ada" in bad.text
    assert client.get("/dashboard?day=tomorrow").status_code == 400


def test_page_queries_on_sqlite_and_postgresql(engine):
    """The dialect-specific SQL (local day, FILTER, time-zone shifts) on both databases."""
    from pipeline.review import queries

    world = seed(engine, extra_cases=3)
    queue = queries.case_queue(engine, queries.QueueFilter(status=""))
    ids = [r.case_id for r in queue.rows]
    # newest local day first: hotel (yesterday), restaurant (2 days ago), the main case (3 days ago)
    assert ids[:3] == [world.case_ids[3], world.case_ids[2], world.case_id]
    assert queue.total == 4 + 3
    case = queries.get_case(engine, world.case_id)
    chart = queries.case_chart(engine, case)
    assert sum(chart["flagged"]) == 3 and any(v is not None for v in chart["median"])
    txns = queries.case_transactions(engine, case)
    assert txns.total == 82 and txns.by_status["void"]["count"] == 12
    assert {o.operator_id: o.voids for o in txns.by_operator} == {"op-7": 12, "op-2": 0}
    figures = queries.dashboard(engine, now=datetime.now(UTC), day=world.day)
    assert figures["today_total"] == world.day_total_rp
    assert figures["last_week_same_time"] == world.compare_total_rp
    health = queries.pipeline_health(engine)
    assert [s["source"] for s in health["sources"]] == ["api:tapbox", "landing:kota"]
    assert health["sources"][1]["last_ok_at"] is not None and len(health["failed"]) == 1


def test_a_long_reconciliation_case_shows_both_dates_and_its_figures_side_by_side(site):
    app, engine, world = site
    hotel = world.case_ids[3]
    with engine.begin() as connection:
        start = connection.execute(
            select(cases.c.start_at).where(cases.c.case_id == hotel)
        ).scalar()
        connection.execute(
            update(cases)
            .where(cases.c.case_id == hotel)
            .values(
                start_at=start - timedelta(days=2),
                details='{"recorded_rp": 9000000, "declared_rp": 7750000, "period": {"from": "a"}}',
            )
        )
    client, _ = as_role(app, "auditor")
    page = client.get(f"/cases/{hotel}").text
    span = page.split('id="case-span">')[1].split("<")[0]
    first, last = world.day - timedelta(days=2), world.day  # [today-3, today) in local days
    assert "–" in span and str(first.day) in span and str(last.day) in span, span
    assert "00.00" not in span and "00:00" not in span  # whole days, not "00:00 - 00:00"
    recon = page.split('id="recon"')[1].split("</section>")[0]
    assert "Tercatat di perangkat" in recon and "Dilaporkan dalam SPT" in recon
    assert "Rp 9.000.000" in recon and "Rp 7.750.000" in recon
    assert 'id="case-chart"' not in page and 'id="breakdown"' not in page


# ------------------------------------------------------------------ one money model, honest spans


def test_case_breakdown_sums_to_the_headline_with_one_expected_per_hour(site):
    app, engine, world = site
    client, _ = as_role(app, "auditor")
    page = client.get(f"/cases/{world.case_id}").text
    headline = int(re.search(r'id="case-shortfall" data-rp="(\d+)"', page).group(1))
    table = page.split('id="breakdown"')[1].split("</table>")[0]
    hours = [int(x) for x in re.findall(r'class="num shortfall" data-rp="(-?\d+)"', table)]
    assert headline == 412_000 and sum(hours) == headline and len(hours) == 3
    assert f'id="breakdown-total" data-rp="{headline}"' in table
    assert "penjualan tidak tercatat" in page.split('id="case-measure">')[1][:60]
    # the chart's expected figure of each flagged hour is the table's: recorded + shortfall
    from pipeline.review import queries

    case = queries.get_case(engine, world.case_id)
    chart, breakdown = queries.case_chart(engine, case), queries.case_breakdown(engine, case)
    expected_at = dict(zip(chart["t"], chart["expected"], strict=True))
    for row in breakdown.rows:
        assert expected_at[int(row["hour_start"].timestamp())] == row["expected"]
        assert row["expected"] == row["recorded"] + row["shortfall"]


def test_closed_hours_inside_a_span_are_not_flagged(site):
    """A case's span runs over the night between its flags; the chart shades only flagged hours."""
    from pipeline.review import queries

    _, engine, world = site
    with engine.begin() as connection:  # stretch the case over the next night, flags unchanged
        end = connection.execute(
            select(cases.c.end_at).where(cases.c.case_id == world.case_id)
        ).scalar()
        connection.execute(
            update(cases)
            .where(cases.c.case_id == world.case_id)
            .values(end_at=end + timedelta(hours=14))
        )
    case = queries.get_case(engine, world.case_id)
    chart = queries.case_chart(engine, case)
    assert sum(chart["flagged"]) == 3
    hours = queries.case_hours(engine, case, chart)
    assert len(hours) > 3 and sum(h["flagged"] for h in hours) == 3


def test_totals_never_add_lost_sales_and_lost_tax(site):
    app, _, world = site
    client, _ = as_role(app, "supervisor")
    page = client.get("/cases?status=").text
    summary = page.split('id="queue-summary"')[1].split("</p>")[0]
    measures = re.findall(r'data-measure="(\w+)"', summary)
    assert "sales_not_recorded" in measures and len(measures) == len(set(measures)) >= 2
    figures = client.get(f"/api/dashboard?day={world.day.isoformat()}").json()
    by_measure = figures["open_shortfall_by_measure"]
    assert "open_shortfall_rp" not in figures
    assert set(by_measure) >= {"sales_not_recorded"}
    assert by_measure["sales_not_recorded"] == 412_000 + 88_000 + sum(10_000 + k for k in range(55))


# ------------------------------------------------------------------ out-of-range input

ODD_IDS = ["0", "-1", "2147483648", "9" * 30, "abc", "1.5"]
ODD_VALUES = ["0", "-1", "9" * 30, "9" * 5000, "9999-12-31", "0001-01-01", "x" * 3000, "%00", "é"]
FORM_FIELDS = ["decision", "note", "assignee", "role", "active", "password", "username", "next"]
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


def _walked_paths(app, world) -> list[tuple[str, str, str, list[str]]]:
    """(method, path template, a valid path, its query parameters) for every route of the app
    but sign-out."""
    valid = {"case_id": str(world.case_id), "batch_id": "1", "fmt": "csv", "username": "alice",
             "attachment_id": "1", "prefix": "abcd1234", "request_id": "r1"}  # fmt: skip
    out = []
    for route in app.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            # The dashboard's event stream stays open while valid: its odd days are walked
            # in the test itself.
            if route.path == "/api/dashboard/events":
                continue
            if method in ("GET", "POST") and route.path != "/logout":
                params = [p.alias for p in route.dependant.query_params]
                if route.path in ("/cases", "/cases/export.{fmt}"):  # read from the raw query
                    params += [f.name for f in fields(QueueFilter)]
                if route.path == "/cases/{case_id}":  # the transaction filter, raw query too
                    params += ["txn_status", "method", "operator"]
                # A converter ({path:path}, the API's catch-all) takes any valid value: "x".
                path = re.sub(r"{(\w+)(?::\w+)?}", lambda m: valid.get(m[1], "x"), route.path)
                out.append((method, route.path, path, params))
    return out


def _assert_handled(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    for header in SECURITY_HEADERS:
        assert header in response.headers, (what, header)
    if response.status_code >= 400:
        assert "set-cookie" not in response.headers, what


def test_every_route_answers_out_of_range_input_with_a_4xx_not_a_500(site):
    """Every route (enumerated from the app) x odd path, query and form values, as the
    supervisor (who holds every right): never a 500, always the security headers."""
    app, _, world = site
    app.state.login_throttle = LoginThrottle(
        app.state.engine, cap=0
    )  # the walk's many wrong sign-ins
    client, token = as_role(app, "supervisor")
    walked = _walked_paths(app, world)
    assert len(walked) >= 18
    for value in ODD_VALUES:
        if value != "0":
            stream = client.get("/api/dashboard/events", params={"day": value})
            assert 400 <= stream.status_code < 500, (value, stream.status_code)
    for method, template, path, params in walked:
        odd_paths = [path]
        for name in re.findall(r"{(\w+)}", template):
            odd = ODD_IDS if name.endswith("_id") else ODD_VALUES[:1] + ["pdf", "A" * 300]
            odd_paths += [template.replace(f"{{{name}}}", v) for v in odd]
            odd_paths = [re.sub(r"{\w+}", "1", p) for p in odd_paths]
        for odd_path in odd_paths:
            if method == "GET":
                _assert_handled(client.get(odd_path), odd_path)
            else:
                _assert_handled(client.post(odd_path, data={"csrf_token": token}), odd_path)
        for value in ODD_VALUES:
            if method == "GET":
                for name in params:
                    _assert_handled(client.get(path, params={name: value}), (path, name, value))
            else:
                form = {name: value for name in FORM_FIELDS}
                _assert_handled(client.post(path, data={**form, "csrf_token": token}), path)
        assert client.get("/users").status_code == 200, f"still signed in after {path}"


@pytest.mark.parametrize(
    "path",
    ["/cases?date_from=9999-12-31", "/cases?date_to=9999-12-31", "/cases?date_from=0001-01-01",
     "/cases/export.csv?date_to=9999-12-31", "/cases/export.xlsx?date_from=0001-01-01",
     "/api/dashboard?day=9999-12-31", "/api/dashboard?day=0001-01-01",
     "/dashboard?day=9999-12-31"],
)  # fmt: skip
def test_dates_out_of_range_are_refused_with_the_reason(site, path):
    app, _, _ = site
    client, _ = as_role(app, "supervisor")
    response = client.get(path)
    assert response.status_code == 400, (path, response.status_code)
    assert "bukan tanggal dari 2000-01-01 sampai 2099-12-31" in response.text


@pytest.mark.parametrize("path", ["/cases?page=" + "9" * 30, "/cases/{case}?page=" + "9" * 30,
                                  "/ops/batches/1?page=99999999999"])  # fmt: skip
def test_huge_page_numbers_are_refused_with_the_reason(site, path):
    app, _, world = site
    client, _ = as_role(app, "supervisor")
    response = client.get(path.format(case=world.case_id))
    assert response.status_code == 400 and "bukan nomor halaman" in response.text


@pytest.mark.parametrize("path", ["/cases/99999", "/cases/99999/export.csv", "/ops/batches/99999",
                                  "/cases/" + "9" * 30, "/ops/batches/" + "9" * 30])  # fmt: skip
def test_a_missing_or_impossible_record_is_not_found(site, path):
    app, _, _ = site
    client, token = as_role(app, "supervisor")
    response = client.get(path)
    assert response.status_code == 404 and "tidak ada" in response.text, path
    response = client.post("/users/nobody/role", data={"role": "ops", "csrf_token": token})
    # the domain's refusal is phrased: said in Indonesian with the value it names
    assert response.status_code == 404 and "pengguna &#39;nobody&#39; tidak ada" in response.text
    assert "Tidak ditemukan" in response.text


def test_case_reasons_and_the_queue_export_follow_the_readers_language(site):
    """The detector's and reconciliation's reasons are phrases: Indonesian by default, English on
    the switch, with the page's own formats (Sel 14.00, Rp 412.000)."""
    app, engine, world = site
    client, _ = as_role(app, "auditor")
    reasons = client.get(f"/cases/{world.case_id}").text.split('class="reasons"')[1]
    reasons = reasons.split("</ul>")[0]
    assert "<li>3 jam ditandai, dugaan pelaporan kurang, Rp 412.000 dipertaruhkan</li>" in reasons
    assert (
        "<li>terkuat: pendapatan 65% di bawah biasanya untuk Sel 14.00 (Rp 74.000 vs Rp 211.000)"
    ) in reasons
    assert "operator op-7: pembatalan/pengembalian 20% vs biasanya operator itu 5%" in reasons
    english = client.get(f"/cases/{world.case_id}?lang=en").text.split('class="reasons"')[1]
    assert "<li>strongest: revenue 65% below the usual for Tue 14.00 (Rp 74.000 vs" in english
    recon_id = world.case_ids[3]
    recon = client.get(f"/cases/{recon_id}?lang=id").text.split('class="reasons"')[1]
    assert "dilaporkan Rp 7.750.000 vs tercatat Rp 9.000.000: Rp 1.250.000 (14%)" in recon
    exported = client.get("/cases/export.csv?lang=id").text
    assert "3 jam ditandai, dugaan pelaporan kurang" in exported
    assert (
        "3 flagged hours, suspected under-reporting" in client.get("/cases/export.csv?lang=en").text
    )


def test_a_reason_written_before_phrases_is_shown_as_its_text(site):
    app, engine, world = site
    with engine.begin() as connection:
        connection.execute(
            cases.update()
            .where(cases.c.case_id == world.case_id)
            .values(reason_parts=None, reasons="old words; more old words")
        )
    client, _ = as_role(app, "auditor")
    page = client.get(f"/cases/{world.case_id}").text
    assert "<li>old words</li><li>more old words</li>" in page


def test_a_refusal_of_the_domain_is_said_in_the_readers_language(site):
    app, _, world = site
    client, token = as_role(app, "auditor")
    form = {"decision": "confirmed", "note": " ", "csrf_token": token}
    refused = client.post(f"/cases/{world.case_id}/decide", data=form)
    assert refused.status_code == 400
    assert "memutuskan kebocoran terbukti memerlukan catatan alasannya" in refused.text
    client.get("/cases?lang=en")  # the language cookie
    refused = client.post(f"/cases/{world.case_id}/decide", data=form)
    assert "deciding confirmed leakage needs a note saying why" in refused.text
