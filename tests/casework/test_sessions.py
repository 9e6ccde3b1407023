"""Server-side review sessions on SQLite and PostgreSQL: idle and absolute limits, sign-out, and
every change to a user that must end that user's sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from pipeline.casework import sessions
from pipeline.casework.sessions import SessionLimits
from pipeline.casework.users import add_user, set_active, set_password, set_role
from pipeline.core.errors import UnusableInputError
from pipeline.store.schema import review_sessions

LIMITS = SessionLimits(idle=timedelta(minutes=60), absolute=timedelta(hours=12))
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def budi(engine):
    add_user(engine, "budi", "auditor", "budi-password", actor="test", now=T0)
    return engine


def test_a_session_lives_until_signed_out(budi):
    token = sessions.start(budi, "budi", now=T0)
    assert sessions.check(budi, token, LIMITS, now=T0 + timedelta(minutes=5)) == "budi"
    sessions.end(budi, token, now=T0 + timedelta(minutes=6))
    assert sessions.check(budi, token, LIMITS, now=T0 + timedelta(minutes=7)) is None
    assert sessions.check(budi, "made-up", LIMITS, now=T0) is None
    assert sessions.check(budi, None, LIMITS, now=T0) is None


def test_only_the_tokens_digest_is_stored(budi):
    token = sessions.start(budi, "budi", now=T0)
    with budi.connect() as connection:
        stored = connection.execute(select(review_sessions.c.session_id)).scalar()
    assert token not in stored and len(stored) == 64


def test_an_idle_session_ends_and_stays_ended(budi):
    token = sessions.start(budi, "budi", now=T0)
    assert sessions.check(budi, token, LIMITS, now=T0 + timedelta(minutes=61)) is None
    with budi.connect() as connection:
        reason = connection.execute(select(review_sessions.c.end_reason)).scalar()
    assert reason == "idle"
    assert sessions.check(budi, token, LIMITS, now=T0 + timedelta(minutes=62)) is None


def test_use_renews_the_idle_timer_but_never_past_the_absolute_limit(budi):
    token = sessions.start(budi, "budi", now=T0)
    moment = T0
    while moment + timedelta(minutes=50) < T0 + LIMITS.absolute:
        moment += timedelta(minutes=50)
        assert sessions.check(budi, token, LIMITS, now=moment) == "budi", moment
    assert sessions.check(budi, token, LIMITS, now=T0 + LIMITS.absolute) is None
    with budi.connect() as connection:
        assert connection.execute(select(review_sessions.c.end_reason)).scalar() == "expired"


@pytest.mark.parametrize(
    "change",
    [
        lambda e: set_password(e, "budi", "a-new-password", actor="boss", now=T0),
        lambda e: set_role(e, "budi", "ops", actor="boss", now=T0),
        lambda e: set_active(e, "budi", False, actor="boss", now=T0),
    ],
    ids=["password", "role", "deactivated"],
)
def test_a_change_to_the_user_ends_every_session_of_theirs(budi, change):
    mine = [sessions.start(budi, "budi", now=T0) for _ in range(2)]
    add_user(budi, "sari", "auditor", "sari-password", actor="test", now=T0)
    other = sessions.start(budi, "sari", now=T0)
    change(budi)
    later = T0 + timedelta(minutes=1)
    assert [sessions.check(budi, t, LIMITS, now=later) for t in mine] == [None, None]
    assert sessions.check(budi, other, LIMITS, now=later) == "sari"


def test_reactivating_a_user_never_revives_an_old_cookie(budi):
    token = sessions.start(budi, "budi", now=T0)
    set_active(budi, "budi", False, actor="boss", now=T0)
    set_active(budi, "budi", True, actor="boss", now=T0 + timedelta(minutes=1))
    assert sessions.check(budi, token, LIMITS, now=T0 + timedelta(minutes=2)) is None


def test_session_limits_must_be_positive():
    assert SessionLimits.of(idle_minutes=30, hours=12).idle == timedelta(minutes=30)
    with pytest.raises(UnusableInputError, match="idle=0"):
        SessionLimits.of(idle_minutes=0, hours=12)
