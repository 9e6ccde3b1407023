"""The push inbox on a real database: a group a killed writer left is finished from its batch
when that committed, and put back in the inbox when it did not - never lost, never doubled."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from pipeline.intake.push import PushLimits, PushService, inbox, issue_key
from pipeline.intake.push.group import ingest_group
from pipeline.intake.push.rate import RateLimiter
from pipeline.store.schema import transactions
from tests.helpers.push_client import sale
from tests.helpers.registry import register

DEAD_WRITER = f"push {socket.gethostname()}-999999999 deadbeef0001"  # no such pid


def _service(engine) -> PushService:
    return PushService(
        engine,
        PushLimits(),
        future_tolerance=timedelta(minutes=10),
        earliest=datetime(2000, 1, 1, tzinfo=UTC),
    )


def _submit(engine, *args):
    with engine.begin() as connection:
        return inbox.submit(connection, *args)


def _stored(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(transactions)).scalar_one()


def test_a_group_a_dead_writer_left_unstored_goes_back_and_is_ingested_once(engine):
    register(engine, "P1")
    key = issue_key(engine, "box", ["P1"], actor="test").key
    now = datetime.now(UTC)
    row, _ = _submit(engine, key.key_id, "req-1", "sha", [sale("a", "P1"), sale("b", "P1")], now)
    assert inbox.take_group(engine, DEAD_WRITER, max_rows=100, now=now)  # then the writer died
    service = _service(engine)
    service.recover_if_due()
    assert inbox.get(engine, row.push_id).status == "pending"
    assert service.write_one_group()
    done = inbox.get(engine, row.push_id)
    assert done.status == "done" and done.response["accepted"] == 2
    assert _stored(engine) == 2


def test_a_group_stored_but_not_answered_is_answered_from_its_batch(engine):
    register(engine, "P1")
    key = issue_key(engine, "box", ["P1"], actor="test").key
    now = datetime.now(UTC)
    rows = [sale("a", "P1"), sale("bad", "P1", -1), sale("c", "P1")]
    row, _ = _submit(engine, key.key_id, "req-1", "sha", rows, now)
    taken = inbox.take_group(engine, DEAD_WRITER, max_rows=100, now=now)
    # The writer stored the batch and was killed before it wrote the answers.
    ingest_group(
        engine,
        DEAD_WRITER,
        taken,
        now=now,
        future_tolerance=timedelta(minutes=10),
        earliest=datetime(2000, 1, 1, tzinfo=UTC),
    )
    _service(engine).recover_if_due()
    done = inbox.get(engine, row.push_id)
    assert done.status == "done"
    assert (done.response["accepted"], done.response["quarantined"]) == (2, 1)
    assert done.response["rejected"][0]["row"] == 2
    assert _stored(engine) == 2


def test_the_same_row_in_two_requests_of_one_group_is_stored_once(engine):
    register(engine, "P1")
    key = issue_key(engine, "box", ["P1"], actor="test").key
    now = datetime.now(UTC)
    same = sale("dup", "P1")
    first, _ = _submit(engine, key.key_id, "r1", "s1", [same], now)
    second, _ = _submit(engine, key.key_id, "r2", "s2", [same, sale("x", "P1")], now)
    assert _service(engine).write_one_group()
    a, b = inbox.get(engine, first.push_id).response, inbox.get(engine, second.push_id).response
    assert (a["accepted"], a["duplicates"]) == (1, 0)
    assert (b["accepted"], b["duplicates"]) == (1, 1)
    assert _stored(engine) == 2


def test_the_rate_limiter_allows_the_burst_then_the_rate():
    clock = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: clock[0])
    assert [limiter.take(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take(1) > 0  # burst spent
    assert limiter.take(2) == 0.0  # another key has its own bucket
    clock[0] += 0.5
    assert limiter.take(1) == 0.0  # half a second at 2/s: one more
