"""Users: the append-only trail of changes to them (refused rewrites on SQLite and PostgreSQL),
nobody changing their own role or access (the login throttle: test_throttle.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from pipeline.casework.users import (
    add_user,
    get_user,
    set_active,
    set_password,
    set_role,
    user_trail,
)
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.store.schema import user_events

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_every_change_to_users_is_in_the_trail(engine):
    add_user(engine, "boss", "supervisor", "boss-password", actor="command line", now=T0)
    add_user(engine, "budi", "auditor", "budi-password", actor="boss", now=T0)
    set_role(engine, "Budi", "supervisor", actor="boss", now=T0 + timedelta(minutes=1))
    set_password(engine, "budi", "another-password", actor="boss", now=T0 + timedelta(minutes=2))
    set_active(engine, "budi", False, actor="boss", now=T0 + timedelta(minutes=3))
    set_active(engine, "budi", True, actor="boss", now=T0 + timedelta(minutes=4))
    trail = [(e.actor, e.username, e.action, e.before, e.after) for e in user_trail(engine)]
    assert trail == [
        ("boss", "budi", "reactivated", {"active": False}, {"active": True}),
        ("boss", "budi", "deactivated", {"active": True}, {"active": False}),
        ("boss", "budi", "password", None, None),
        ("boss", "budi", "role", {"role": "auditor"}, {"role": "supervisor"}),
        ("boss", "budi", "created", None, {"role": "auditor"}),
        ("command line", "boss", "created", None, {"role": "supervisor"}),
    ]


def test_user_events_refuse_update_and_delete_in_the_database(engine):
    """On SQLite and PostgreSQL: the triggers of migration 0005_review_sec."""
    add_user(engine, "budi", "auditor", "budi-password", actor="boss", now=T0)
    for statement in (
        update(user_events).values(actor="someone else"),
        update(user_events).values(action="nothing"),
        user_events.delete(),
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(statement)
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("TRUNCATE user_events"))
    assert [(e.actor, e.action) for e in user_trail(engine)] == [("boss", "created")]


@pytest.mark.parametrize("written_as", ["boss", "BOSS", " Boss "])
def test_no_one_changes_their_own_role_or_access_whatever_the_case(engine, written_as):
    add_user(engine, "boss", "supervisor", "boss-password", actor="test", now=T0)
    with pytest.raises(UnusableInputError, match="own role"):
        set_role(engine, written_as, "auditor", actor="boss")
    with pytest.raises(UnusableInputError, match="deactivate yourself"):
        set_active(engine, written_as, False, actor="Boss")
    assert get_user(engine, "boss").role == "supervisor" and get_user(engine, "boss").active
    assert [e.action for e in user_trail(engine)] == ["created"]


def test_changing_a_missing_user_is_not_found(engine):
    with pytest.raises(NotFoundError, match="'nobody' does not exist"):
        set_role(engine, "nobody", "ops", actor="boss")
