"""Review-app users: roles, what each role may do, argon2 password hashes.

Roles: ``auditor`` works cases; ``supervisor`` does everything an auditor does plus reopening
decided cases and managing users; ``ops`` watches pipeline health; ``viewer`` (a leader) sees
the revenue dashboard only. Every right is named in ``RIGHTS`` so the app and the workflow in
``pipeline.casework.audit`` check the same table.

This module is the one writer of ``users`` and of ``user_events``: every change to a user
(created, role, password, e-mail, deactivated, reactivated) appends one event naming who did it, in the
same transaction as the change; migration 0005 makes the database refuse to rewrite that trail.
A password, role or activation change also ends the user's sessions (``casework.sessions``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, update

from pipeline.casework import sessions
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.core.phrases import Phrase, phrase
from pipeline.store.schema import user_events, users

ROLES = ("auditor", "supervisor", "ops", "viewer")

# right -> roles holding it. Supervisor holds every right.
RIGHTS: dict[str, frozenset[str]] = {
    "dashboard.view": frozenset(ROLES),
    "cases.view": frozenset({"auditor", "supervisor"}),
    "cases.decide": frozenset({"auditor", "supervisor"}),
    "cases.assign": frozenset({"auditor", "supervisor"}),
    "cases.export": frozenset({"auditor", "supervisor"}),
    "cases.reopen": frozenset({"supervisor"}),
    "ops.view": frozenset({"ops", "supervisor"}),
    "quarantine.release": frozenset({"ops", "supervisor"}),  # re-admit quarantined rows
    "users.manage": frozenset({"supervisor"}),
    "keys.manage": frozenset({"supervisor"}),  # push API keys of devices and vendors
    "alerts.manage": frozenset({"supervisor"}),  # the alert rule set (casework.alert_rules)
    "targets.manage": frozenset({"supervisor"}),  # the yearly PAD targets leaders read against
}
# Roles a case may be assigned to: the people who work cases.
CASE_WORKER_ROLES = frozenset({"auditor", "supervisor"})

MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


# argon2id at OWASP's recommended floor (19 MiB, 2 passes, 1 lane): one login costs ~50 ms on one
# core instead of argon2-cffi's default 64 MiB x 4 lanes, which starves a small shared server
# when several people sign in at once. Hashes made with other parameters are upgraded at login.
# Made on first use, not at import: the CLI and the DAG processor import this module for ROLES and
# RIGHTS and should not load argon2 nor pay for the dummy hash below (~50 ms) to do so.
@functools.cache
def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so a miss costs the same as a wrong password.
    return _hasher().hash("not a real password")


class NotAllowed(Exception):
    """The signed-in user's role does not hold the right needed for this action.

    Its ``phrase`` (``core.phrases``) lets the 403 page say it in the reader's language, the
    right and the role by their labels; ``str()`` is the English."""

    def __init__(self, username: str, role: str, right: str) -> None:
        self.phrase = phrase(
            "user %(username)r (%(role_kind)s) may not %(right_kind)s",
            username=username,
            role_kind=role,
            right_kind=right,
        )
        super().__init__(self.phrase.english())


@dataclass(frozen=True)
class User:
    username: str
    role: str
    active: bool = True

    def can(self, right: str) -> bool:
        """Whether this user's role holds ``right`` (a key of ``RIGHTS``)."""
        return self.active and self.role in RIGHTS[right]

    def require(self, right: str) -> None:
        """Raise ``NotAllowed`` unless this user holds ``right``."""
        if not self.can(right):
            raise NotAllowed(self.username, self.role, right)


def check_username(username: str) -> str:
    """The normalised (lower-case) username, or UnusableInputError naming what is wrong."""
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise UnusableInputError.said(
            "username %(username)r is not usable: 2-64 characters of letters, digits, '.', '_'"
            " or '-'",
            username=username,
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UnusableInputError.said(
            "role %(role)r is not one of %(choices)s", role=role, choices=", ".join(ROLES)
        )
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UnusableInputError.said(
            "password is too short: at least %(least_n)s characters", least_n=MIN_PASSWORD_LENGTH
        )
    return password


def add_user(
    engine: Engine,
    username: str,
    role: str,
    password: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> User:
    """Create a user; refuses a taken username, an unknown role or a short password."""
    name = check_username(username)
    check_role(role)
    check_password(password)
    if get_user(engine, name) is not None:
        raise UnusableInputError.said("user %(name)r already exists", name=name)
    _insert(engine, name, role, password, actor, now or datetime.now(UTC))
    return User(name, role)


def _insert(
    engine: Engine, username: str, role: str, password: str, actor: str, now: datetime
) -> None:
    with engine.begin() as connection:
        connection.execute(
            users.insert().values(
                username=username,
                password_hash=_hasher().hash(password),
                role=role,
                active=1,
                created_at=now,
            )
        )
        _record(connection, now, actor, username, "created", None, {"role": role})


def _record(
    connection: Connection,
    now: datetime,
    actor: str,
    username: str,
    action: str,
    before: dict | None,
    after: dict | None,
) -> None:
    connection.execute(
        user_events.insert().values(
            at=now,
            actor=actor,
            username=username,
            action=action,
            before=json.dumps(before) if before is not None else None,
            after=json.dumps(after) if after is not None else None,
        )
    )


def get_user(engine: Engine, username: str) -> User | None:
    """The user called ``username`` (active or not), or None."""
    with engine.connect() as connection:
        row = connection.execute(
            select(users.c.username, users.c.role, users.c.active).where(
                users.c.username == username.strip().lower()
            )
        ).first()
    return User(row.username, row.role, bool(row.active)) if row else None


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(users.c.username, users.c.role, users.c.active).order_by(users.c.username)
        ).all()
    return [User(r.username, r.role, bool(r.active)) for r in rows]


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The active user if ``password`` matches, else None. Rehashes when argon2 parameters moved."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    name = username.strip().lower()
    with engine.connect() as connection:
        row = connection.execute(select(users).where(users.c.username == name)).first()
    if row is None:
        try:
            _hasher().verify(_dummy_hash(), password)
        except VerificationError:
            pass
        return None
    try:
        _hasher().verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not row.active:
        return None
    if _hasher().check_needs_rehash(row.password_hash):
        with engine.begin() as connection:
            connection.execute(
                update(users)
                .where(users.c.username == name)
                .values(password_hash=_hasher().hash(password))
            )
    return User(row.username, row.role, True)


@dataclass(frozen=True)
class UserEvent:
    at: datetime
    actor: str
    username: str
    action: str  # created | role | password | deactivated | reactivated
    before: dict | None
    after: dict | None


def user_trail(engine: Engine, *, limit: int = 200) -> list[UserEvent]:
    """The newest changes to users first (at most ``limit``)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(user_events)
            .order_by(user_events.c.at.desc(), user_events.c.event_id.desc())
            .limit(limit)
        ).all()
    return [
        UserEvent(
            r.at,
            r.actor,
            r.username,
            r.action,
            json.loads(r.before) if r.before else None,
            json.loads(r.after) if r.after else None,
        )
        for r in rows
    ]


def set_password(
    engine: Engine, username: str, password: str, *, actor: str, now: datetime | None = None
) -> None:
    """A new password; ends the user's sessions (a reset locks out whoever held the old one)."""
    check_password(password)
    _change(
        engine,
        username,
        actor,
        now,
        action="password",
        values={"password_hash": _hasher().hash(password)},
        shown=lambda row: None,  # the trail says a reset happened, never what the hash was
    )


def set_role(
    engine: Engine, username: str, role: str, *, actor: str, now: datetime | None = None
) -> None:
    """Change a user's role (never one's own); ends that user's sessions."""
    check_role(role)
    _refuse_self(username, actor, phrase("you cannot change your own role; ask another supervisor"))
    _change(
        engine,
        username,
        actor,
        now,
        action="role",
        values={"role": role},
        shown=lambda row: {"role": row.role},
    )


def set_active(
    engine: Engine, username: str, active: bool, *, actor: str, now: datetime | None = None
) -> None:
    """Deactivate (or reactivate) a user, never oneself; rows are kept because trails name them.

    Both end the user's sessions, so reactivating never revives a cookie from before.
    """
    _refuse_self(
        username,
        actor,
        phrase("you cannot deactivate yourself")
        if not active
        else phrase("you cannot reactivate yourself"),
    )
    _change(
        engine,
        username,
        actor,
        now,
        action="reactivated" if active else "deactivated",
        values={"active": 1 if active else 0},
        shown=lambda row: {"active": bool(row.active)},
    )


# Enough to catch a typo or a pasted name (one @, a dot in the domain, no spaces); the mail
# server is the judge of the rest, and a refused address is recorded with the alert it failed.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(email: str) -> str:
    address = email.strip()
    if len(address) > 254 or not _EMAIL.match(address):
        raise UnusableInputError.said("e-mail address %(email)r is not valid", email=email)
    return address


def set_email(
    engine: Engine, username: str, email: str | None, *, actor: str, now: datetime | None = None
) -> None:
    """Set (or with None/"" clear) where alerts and the daily digest reach ``username``.

    Recorded in the user trail like every change to a user; unlike a role or password change it
    leaves the user's sessions alone (an address says nothing about who may sign in).
    """
    address = check_email(email) if email and email.strip() else None
    name = username.strip().lower()
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        before = connection.execute(select(users.c.email).where(users.c.username == name)).first()
        if before is None:
            raise NotFoundError.said("user %(name)r does not exist", name=username)
        connection.execute(update(users).where(users.c.username == name).values(email=address))
        _record(connection, now, actor, name, "email", {"email": before.email}, {"email": address})


@dataclass(frozen=True)
class Contact:
    """A user as an alert reaches them."""

    username: str
    role: str
    email: str | None


def contacts(engine: Engine, *, active_only: bool = True) -> list[Contact]:
    """Every active user (every user, with ``active_only=False``) with their role and e-mail
    address (None when they gave none)."""
    query = select(users.c.username, users.c.role, users.c.email).order_by(users.c.username)
    if active_only:
        query = query.where(users.c.active == 1)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [Contact(r.username, r.role, r.email) for r in rows]


def _refuse_self(username: str, actor: str, refusal: Phrase) -> None:
    # Names are compared normalised: "Supervisor" and "supervisor " are the same person.
    if username.strip().lower() == actor.strip().lower():
        raise UnusableInputError.said(refusal.msgid)


def _change(engine: Engine, username: str, actor: str, now, *, action, values, shown) -> None:
    name = username.strip().lower()
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        before = connection.execute(select(users).where(users.c.username == name)).first()
        if before is None:
            raise NotFoundError.said("user %(name)r does not exist", name=username)
        connection.execute(update(users).where(users.c.username == name).values(**values))
        after = connection.execute(select(users).where(users.c.username == name)).one()
        _record(connection, now, actor, name, action, shown(before), shown(after))
        sessions.end_all(connection, name, now, action)


DEMO_USERS = (
    ("demo", "auditor", "demo"),
    ("supervisor", "supervisor", "supervisor"),
    ("ops", "ops", "ops"),
    ("leader", "viewer", "leader"),
)


def ensure_demo_users(engine: Engine) -> list[tuple[str, str, str]]:
    """Create the demo logins (username = password) if missing; returns (username, role, password).

    For `eincome demo` only: these passwords are deliberately weak and skip the length rule.
    """
    now = datetime.now(UTC)
    for username, role, password in DEMO_USERS:
        if get_user(engine, username) is None:
            _insert(engine, username, role, password, "demo", now)
    return list(DEMO_USERS)
