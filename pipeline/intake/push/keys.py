"""API keys for devices and vendors that push transactions: issue, list, revoke, authenticate.

The one writer of ``api_keys``. A key reads ``eik_<prefix>_<secret>``: the prefix finds the row
(and is safe to show on screens and in logs), the secret is 32 random bytes and only its SHA-256
is stored. A salted slow hash (the users' argon2) is for passwords people choose; a random
256-bit secret cannot be guessed from its SHA-256, and a push must be checked in microseconds,
not the ~50 ms argon2 takes, at a thousand requests a second.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.store.schema import api_keys, points

KEY_PATTERN = re.compile(r"^eik_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
MAX_LABEL = 200


@dataclass(frozen=True)
class ApiKey:
    """One key as stored (never the secret)."""

    key_id: int
    prefix: str
    label: str
    point_ids: tuple[str, ...]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def covers(self, point_id: str) -> bool:
        return point_id in self.point_ids


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``secret`` is the whole key string, shown once and never stored."""

    key: ApiKey
    secret: str


class KeyRefused(Exception):
    """A push request's key is missing, unknown or revoked: answered 401 with this reason."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key_of(row) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        prefix=row.prefix,
        label=row.label,
        point_ids=tuple(json.loads(row.point_ids)),
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


def issue_key(
    engine: Engine,
    label: str,
    point_ids: list[str],
    *,
    actor: str,
    now: datetime | None = None,
) -> IssuedKey:
    """A new key for ``label`` (a device or vendor) that may push for ``point_ids``."""
    label = (label or "").strip()
    if not label or len(label) > MAX_LABEL:
        raise UnusableInputError(
            f"key label {label!r} must be 1 to {MAX_LABEL} characters (say which device or vendor)"
        )
    wanted = sorted({p.strip() for p in point_ids if p and p.strip()})
    if not wanted:
        raise UnusableInputError("a key needs at least one point it may push for")
    now = now or datetime.now(UTC)
    prefix = secrets.token_hex(6)
    secret = f"eik_{prefix}_{secrets.token_urlsafe(32)}"
    with engine.begin() as connection:
        known = set(
            connection.execute(
                select(points.c.point_id).where(points.c.point_id.in_(wanted))
            ).scalars()
        )
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise UnusableInputError(
                f"point {', '.join(unknown)} is not in the registry (eincome points load)"
            )
        key_id = connection.execute(
            insert(api_keys)
            .values(
                prefix=prefix,
                secret_sha256=_sha256(secret),
                label=label,
                point_ids=json.dumps(wanted),
                created_by=actor,
                created_at=now,
            )
            .returning(api_keys.c.key_id)
        ).scalar_one()
    key = ApiKey(key_id, prefix, label, tuple(wanted), actor, now)
    return IssuedKey(key=key, secret=secret)


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key, newest first, revoked ones included."""
    with engine.connect() as connection:
        rows = connection.execute(select(api_keys).order_by(api_keys.c.key_id.desc())).all()
    return [_key_of(row) for row in rows]


def get_key(engine: Engine, prefix: str) -> ApiKey:
    with engine.connect() as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
    if row is None:
        raise NotFoundError(f"there is no API key {prefix!r}")
    return _key_of(row)


def revoke_key(engine: Engine, prefix: str, *, actor: str, now: datetime | None = None) -> ApiKey:
    """Revoke a key: its next request is refused. Revoking a revoked key changes nothing."""
    key = get_key(engine, prefix)
    if not key.active:
        return key
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key.key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=actor)
        )
    return get_key(engine, prefix)


def authenticate_key(engine: Engine, presented: str | None) -> ApiKey:
    """The active key ``presented`` (the whole key string), or KeyRefused saying why not."""
    with engine.connect() as connection:
        return key_presented(connection, presented)


def key_presented(connection: Connection, presented: str | None) -> ApiKey:
    """``authenticate_key`` on an open connection: the push path reads the key in the very
    transaction that stores the request, so a revocation committed before it is always seen
    (no cache of keys) and a request costs one transaction, not two."""
    if not presented:
        raise KeyRefused(
            "no API key: send it as 'Authorization: Bearer eik_...' (a supervisor issues keys)"
        )
    match = KEY_PATTERN.match(presented.strip())
    if match is None:
        raise KeyRefused("the API key is not an eincome key (it reads eik_<prefix>_<secret>)")
    row = connection.execute(_KEY_BY_PREFIX, {"prefix": match.group(1)}).first()
    # Compare even when no row matched, so timing does not tell a valid prefix from a bad one.
    stored = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(stored, _sha256(presented.strip())) or row is None:
        raise KeyRefused("the API key is not valid")
    key = _key_of(row)
    if not key.active:
        raise KeyRefused(
            f"the API key {key.prefix} was revoked at {key.revoked_at.isoformat(timespec='seconds')}"
        )
    return key


# Built once: the statement is the same on every request (SQLAlchemy caches its compiled form,
# psycopg prepares it server-side after a few uses).
_KEY_BY_PREFIX = select(api_keys).where(api_keys.c.prefix == bindparam("prefix"))
