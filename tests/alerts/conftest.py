"""Fixtures of the alert tests: the real local receivers."""

from __future__ import annotations

import pytest

from tests.helpers.alert_receivers import smtp_server, webhook_receiver


@pytest.fixture
def smtp():
    with smtp_server() as served:
        yield served


@pytest.fixture
def webhook():
    with webhook_receiver() as served:
        yield served


@pytest.fixture
def smtp_home(tmp_path, monkeypatch, smtp):
    """The commands' and tasks' environment: a home in ``tmp_path`` (its SQLite database) and
    e-mail through the local SMTP server, in Indonesian; yields that server's inbox."""
    port, inbox = smtp
    for key, value in {
        "EINCOME_HOME": str(tmp_path),
        "EINCOME_DB_URL": "",
        "EINCOME_SMTP_HOST": "127.0.0.1",
        "EINCOME_SMTP_PORT": str(port),
        "EINCOME_SMTP_STARTTLS": "0",
        "EINCOME_LANGUAGE": "id",
    }.items():
        monkeypatch.setenv(key, value)
    return inbox
