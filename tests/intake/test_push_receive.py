"""Taking a push request on a real database: one connection and one transaction per request
(the key's read, the checks and the inbox row or the refusal), a revocation seen by the very
next request, and resends answered from the first inside that one transaction."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from pipeline.intake.push import (
    KeyRefused,
    PushLimits,
    PushRefused,
    PushService,
    issue_key,
    revoke_key,
)
from pipeline.store.schema import push_requests
from tests.helpers.push_client import sale
from tests.helpers.registry import register


def _service(engine, **limits) -> PushService:
    return PushService(
        engine,
        PushLimits(**limits),
        future_tolerance=timedelta(minutes=10),
        earliest=datetime(2000, 1, 1, tzinfo=UTC),
    )


def _body(*rows) -> bytes:
    return json.dumps(list(rows)).encode()


@contextmanager
def _counted(engine):
    """How many pool checkouts and commits happen inside the block."""
    seen = {"checkouts": 0, "commits": 0}

    def checkout(*_):
        seen["checkouts"] += 1

    def commit(*_):
        seen["commits"] += 1

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "commit", commit)


def _inbox(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                select(push_requests.c.status, push_requests.c.status_code).order_by(
                    push_requests.c.push_id
                )
            )
        ]


@pytest.fixture
def keyed(engine):
    register(engine, "P1", "P2")
    return engine, issue_key(engine, "box", ["P1"], actor="test").secret


def test_a_request_is_one_connection_and_one_transaction(keyed):
    engine, secret = keyed
    service = _service(engine)
    with _counted(engine) as seen:
        receipt = service.receive(secret, _body(sale("a", "P1")), "application/json", None)
    assert receipt.new and receipt.row.status == "pending"
    assert seen == {"checkouts": 1, "commits": 1}
    assert _inbox(engine) == [("pending", None)]


def test_a_refusal_is_recorded_in_the_same_one_transaction(keyed):
    engine, secret = keyed
    service = _service(engine)
    with _counted(engine) as seen, pytest.raises(PushRefused) as refused:
        service.receive(secret, _body(sale("a", "P2")), "application/json", None)
    assert refused.value.status == 403
    assert seen == {"checkouts": 1, "commits": 1}
    assert _inbox(engine) == [("refused", 403)]


def test_a_body_refused_while_it_was_read_is_recorded_as_the_keys_use(keyed):
    engine, secret = keyed
    too_big = PushRefused(413, "the body is over 4,096 bytes")
    with pytest.raises(PushRefused) as refused:
        _service(engine).receive(secret, None, "application/json", None, refused=too_big)
    assert refused.value is too_big
    assert _inbox(engine) == [("refused", 413)]


def test_a_key_revoked_between_two_requests_is_refused_at_the_next(keyed):
    engine, secret = keyed
    service = _service(engine)
    service.receive(secret, _body(sale("a", "P1")), "application/json", None)
    revoke_key(engine, secret.split("_")[1], actor="test")
    with pytest.raises(KeyRefused, match="revoked"):
        service.receive(secret, _body(sale("b", "P1")), "application/json", None)
    assert _inbox(engine) == [("pending", None)]  # nothing of the refused request is stored


def test_a_resend_is_answered_from_the_first_and_a_reused_id_refused_422(keyed):
    engine, secret = keyed
    service = _service(engine)
    body = _body(sale("a", "P1"))
    first = service.receive(secret, body, "application/json", "id-1")
    again = service.receive(secret, body, "application/json", "id-1")
    assert not again.new and again.row.push_id == first.row.push_id
    with pytest.raises(PushRefused) as refused:
        service.receive(secret, _body(sale("b", "P1")), "application/json", "id-1")
    assert refused.value.status == 422
    # The refusal was recorded although the clash came first in the same transaction (on
    # PostgreSQL a failed INSERT would have aborted it).
    assert _inbox(engine) == [("pending", None), ("refused", 422)]


def test_a_key_over_its_rate_is_refused_429_and_recorded(keyed):
    engine, secret = keyed
    service = _service(engine, rate_per_second=1, burst=1)
    service.receive(secret, _body(sale("a", "P1")), "application/json", None)
    with pytest.raises(PushRefused) as refused:
        service.receive(secret, _body(sale("b", "P1")), "application/json", None)
    assert refused.value.status == 429 and refused.value.retry_after > 0
    assert _inbox(engine) == [("pending", None), ("refused", 429)]
