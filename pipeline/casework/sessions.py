"""Review-app sign-ins the server can end: the one writer of ``review_sessions``.

A signed cookie alone is valid until it expires, whatever happens on the server: a copy taken
before sign-out still works, a password reset changes nothing. So the cookie carries only a random
token; this table keeps its SHA-256 (a leaked table signs no one in), who it belongs to, when it
began, when it was last used and when it ended. Every request checks it (``check``), which also
ends it once it has been idle too long or has reached its absolute lifetime. Sign-out ends one
session; a password, role or activation change ends all of that user's (``end_all``), in the
same transaction as the change, so reactivating a user never revives an old cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, select, update

from pipeline.core.errors import UnusableInputError
from pipeline.store.schema import review_sessions

# last_seen_at is rewritten at most this often: a page's many requests cost one write, not ten.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionLimits:
    """How long a sign-in lasts: ``idle`` without a request, ``absolute`` from sign-in at most."""

    idle: timedelta
    absolute: timedelta

    @classmethod
    def of(cls, *, idle_minutes: int, hours: int) -> SessionLimits:
        """From the settings ``session_idle_minutes`` and ``session_hours`` (checked here)."""
        if idle_minutes < 1 or hours < 1:
            raise UnusableInputError(
                f"session limits idle={idle_minutes} min, absolute={hours} h: both must be >= 1"
            )
        return cls(timedelta(minutes=idle_minutes), timedelta(hours=hours))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(engine: Engine, username: str, *, now: datetime | None = None) -> str:
    """A new session for ``username``; returns the token the cookie carries (never stored)."""
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    with engine.begin() as connection:
        connection.execute(
            review_sessions.insert().values(
                session_id=_digest(token),
                username=username,
                created_at=now,
                last_seen_at=now,
            )
        )
    return token


def check(
    engine: Engine, token: str | None, limits: SessionLimits, *, now: datetime | None = None
) -> str | None:
    """The username of the live session ``token`` names, renewing its idle timer; else None.

    The idle timer renews but the session never outlives ``limits.absolute`` from its start.
    A session found past either limit is ended here, so it stays ended.
    """
    if not token:
        return None
    now = now or datetime.now(UTC)
    session_id = _digest(token)
    with engine.connect() as connection:
        row = connection.execute(
            select(review_sessions).where(review_sessions.c.session_id == session_id)
        ).first()
    if row is None or row.ended_at is not None:
        return None
    reason = None
    if now - row.created_at >= limits.absolute:
        reason = "expired"
    elif now - row.last_seen_at >= limits.idle:
        reason = "idle"
    with engine.begin() as connection:
        if reason:
            _end(connection, review_sessions.c.session_id == session_id, now, reason)
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            connection.execute(
                update(review_sessions)
                .where(review_sessions.c.session_id == session_id)
                .where(review_sessions.c.ended_at.is_(None))
                .values(last_seen_at=now)
            )
    return row.username


def end(engine: Engine, token: str | None, *, now: datetime | None = None) -> None:
    """Sign-out: end the session ``token`` names (a no-op for an unknown or ended one)."""
    if token:
        with engine.begin() as connection:
            _end(
                connection,
                review_sessions.c.session_id == _digest(token),
                now or datetime.now(UTC),
                "signed out",
            )


def end_all(connection: Connection, username: str, now: datetime, reason: str) -> int:
    """End every live session of ``username`` inside the caller's transaction; returns how many."""
    return _end(connection, review_sessions.c.username == username, now, reason)


def _end(connection: Connection, where, now: datetime, reason: str) -> int:
    result = connection.execute(
        update(review_sessions)
        .where(where)
        .where(review_sessions.c.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    return result.rowcount
