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
