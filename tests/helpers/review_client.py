"""Signed-in TestClients for the review-app tests: each role signs in once through the form
(argon2 is slow), and a test reuses that role's session cookie on its own copy of the database."""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from pipeline.core.settings import Settings
from pipeline.review import create_app
from pipeline.review.app import SESSION_COOKIE
from pipeline.store import connect

ROLE_USER = {"auditor": "demo", "supervisor": "supervisor", "ops": "ops", "viewer": "leader"}
PASSWORDS = {"demo": "demo", "supervisor": "supervisor", "ops": "ops", "leader": "leader"}


def client_for(app) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def csrf_token(client: TestClient, path: str = "/dashboard") -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def role_cookies(app) -> dict[str, str]:
    """Each role's session cookie, signed in through the login form."""
    cookies = {}
    for role, name in ROLE_USER.items():
        client = client_for(app)
        token = csrf_token(client, "/login")
        response = client.post(
            "/login", data={"username": name, "password": PASSWORDS[name], "csrf_token": token}
        )
        assert response.status_code == 303
        cookies[role] = client.cookies[SESSION_COOKIE]
    return cookies


def as_role(app, role: str) -> tuple[TestClient, str]:
    """A client signed in as ``role`` (``app.state.role_cookies``) and its CSRF token."""
    client = client_for(app)
    client.cookies.set(SESSION_COOKIE, app.state.role_cookies[role])
    return client, csrf_token(client)


@contextmanager
def app_on_a_copy(template: Path, cookies: dict[str, str], tmp_path: Path, settings: Settings):
    """(app, engine) on a copy of the seeded database ``template`` whose roles signed in once
    (``cookies``, from ``role_cookies``): each test changes its own copy, nobody signs in again."""
    copy = tmp_path / "eincome.db"
    shutil.copy(template, copy)
    engine = connect(f"sqlite:///{copy}")
    app = create_app(engine, settings)
    app.state.role_cookies = cookies
    try:
        yield app, engine
    finally:
        engine.dispose()
