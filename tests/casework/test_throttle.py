"""The login throttle: slows wrong passwords per client address and per username, never locks
the right password out for long, and counts in the database so every worker (a separate
process) sees the same counts. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from pipeline.casework.throttle import LoginThrottle
from pipeline.store.schema import login_failures
from tests.helpers import REPO_ROOT

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_a_strangers_wrong_passwords_barely_slow_the_real_user(engine):
    throttle = LoginThrottle(engine)
    for i in range(5):
        throttle.failed("10.0.0.66", "demo", T0 + timedelta(seconds=i))
    later = T0 + timedelta(seconds=6)
    # the real user, elsewhere: a second at most, and the right password is still checked
    assert throttle.delay("10.0.0.7", "demo", later) <= 1.0
    assert throttle.delay("10.0.0.7", "someone-else", later) == 0
    throttle.succeeded("DEMO")
    assert throttle.delay("10.0.0.7", "demo", later) == 0
    assert throttle.delay("10.0.0.66", "demo", later) > 0, "the stranger's address stays slowed"


def test_a_client_trying_many_usernames_is_slowed_up_to_the_cap(engine):
    throttle = LoginThrottle(engine, free=3, base=0.25, cap=4.0)
    delays = []
    for i in range(12):
        delays.append(throttle.delay("10.0.0.99", f"user{i}", T0))
        throttle.failed("10.0.0.99", f"user{i}", T0)
    assert delays[:3] == [0, 0, 0]
    assert delays[3:8] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert delays[8:] == [4.0] * 4, "capped: never a lockout"
    assert throttle.delay("10.0.0.99", "user0", T0 + timedelta(minutes=15)) == 0


def test_a_quiet_key_starts_again_and_old_rows_are_pruned(engine):
    throttle = LoginThrottle(engine, free=1, base=1.0, cap=8.0)
    for _ in range(4):
        throttle.failed("10.0.0.5", "ani", T0)
    assert throttle.failures("10.0.0.5", "ani", T0) == (4, 4)
    later = T0 + timedelta(minutes=16)
    throttle.failed("10.0.0.5", "budi", later)
    # the address was quiet for the window: its count is one again, not five
    assert throttle.failures("10.0.0.5", "budi", later) == (1, 1)
    assert throttle.failures("10.0.0.5", "ani", later) == (1, 0)
    with engine.connect() as connection:
        keys = set(connection.execute(select(login_failures.c.key)).scalars())
    assert keys == {"address:10.0.0.5", "user:budi"}, "ani's stale row is gone"


def test_a_very_long_made_up_username_is_counted_not_refused(engine):
    throttle = LoginThrottle(engine)
    throttle.failed("10.0.0.5", "x" * 5000, T0)
    assert throttle.failures("10.0.0.5", "x" * 5000, T0) == (1, 1)


def test_parallel_attempts_from_one_address_cannot_dodge_the_delay(engine):
    throttle = LoginThrottle(engine, max_waiting=2)
    assert throttle.enter("10.0.0.99") and throttle.enter("10.0.0.99")
    assert not throttle.enter("10.0.0.99")
    assert throttle.enter("10.0.0.7"), "other addresses are not affected"
    throttle.leave("10.0.0.99")
    assert throttle.enter("10.0.0.99")


WORKER = """
import sys
from datetime import datetime, UTC
from pipeline.casework.throttle import LoginThrottle
from pipeline.store.db import create
throttle = LoginThrottle(create(sys.argv[1]))
now = datetime.fromisoformat(sys.argv[2])
for i in range(int(sys.argv[3])):
    throttle.failed("10.0.0.66", f"guess{sys.argv[4]}-{i}", now)
"""


def test_workers_in_separate_processes_share_the_counts_without_losing_any(engine, db_url):
    """Two worker processes record wrong passwords at the same time; a third (this one) sees
    every one of them: the count a guesser builds up does not reset by landing on another
    worker, and concurrent upserts lose no increment."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, db_url, T0.isoformat(), "15", str(n)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    throttle = LoginThrottle(engine, free=3, base=0.25, cap=4.0)
    assert throttle.failures("10.0.0.66", "guess0-0", T0) == (30, 1)
    assert throttle.delay("10.0.0.66", "anyone", T0) == 4.0
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(login_failures)).scalar() == 31
