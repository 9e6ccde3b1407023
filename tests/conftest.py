"""Shared fixtures: real databases (a temp SQLite file, a fresh PostgreSQL database per test).

A test that needs a service this machine lacks is skipped with the reason, except under CI=true,
where a missing service is a failure: CI must never pass by skipping the PostgreSQL tests.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipeline.store import connect
from tests.helpers.services import service_missing

POSTGRES_ADMIN_URL = os.environ.get(
    "EINCOME_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_admin_engine():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        service_missing("psycopg is not installed (pip install -e '.[postgres]')")
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as exc:
        service_missing(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}")
    return engine


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'eincome.db'}"


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = _postgres_admin_engine()
    name = f"eincome_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Run the test on the embedded SQLite default and on the real PostgreSQL server."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(db_url):
    engine = connect(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def push_app(engine):
    """The app serving the push API on a real database with two registered points, small limits
    (5 rows, 4 KB, 5 requests a second per key) and a key for point P1: (base URL, engine, key)."""
    from pipeline.core.settings import Settings
    from pipeline.intake.push import issue_key
    from tests.helpers.push_client import served
    from tests.helpers.registry import register

    register(engine, "P1", "P2")
    settings = Settings(
        secret_key="push-test",
        push_max_rows=5,
        push_max_body_bytes=4096,
        push_rate=5,
        push_burst=5,
        push_wait_seconds=60,
    )
    key = issue_key(engine, "tapping box 1", ["P1"], actor="test").secret
    with served(engine, settings) as base:
        yield base, engine, key


@pytest.fixture(scope="module")
def chromium_browser():
    """Debian's headless Chromium through Playwright (skipped where it is not installed)."""
    import shutil
    from pathlib import Path

    from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
