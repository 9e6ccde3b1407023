"""The record of every alert and digest sent: the one writer of ``alert_deliveries``.

Each attempt is a row: what (``subject_key``: ``case:12``, ``silence:P1:<last sale>``,
``failure:7``, ``digest:<day>``), to whom (``recipient``, the identity a repeat is judged by, and
``address``, where it went), the channel, when, and how it went. A send first *claims* its
subject for its recipient with a ``sending`` row; the database's partial unique index (one
``sending``-or-``sent`` row per subject and recipient) makes the claim fail for a second run, so
an alert reaches a recipient once even when two hourly runs overlap. A failed attempt is
recorded ``failed`` and claimed again by the next run, up to ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, case, func, select, update
from sqlalchemy.exc import IntegrityError

from pipeline.store.schema import alert_deliveries

# A "sending" row older than this was left by a killed run (a send takes seconds; the task's
# timeout is minutes): it is marked failed so the next run tries again, never lost for good.
STALE_SENDING = timedelta(minutes=30)
# After this many failed attempts (hourly runs: half a day) a subject is not tried again for
# that recipient: a dead address must not add a row every hour for ever.
MAX_ATTEMPTS = 12
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Delivery:
    delivery_id: int
    rule_id: int | None
    what: str
    subject_key: str
    recipient: str
    address: str
    channel: str
    title: str
    status: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None


def claim(
    engine: Engine,
    *,
    rule_id: int | None,
    what: str,
    subject_key: str,
    recipient: str,
    address: str,
    channel: str,
    title: str,
    now: datetime,
) -> int | None:
    """Claim ``subject_key`` for ``recipient``: the new attempt's id, or None when it already
    went (or is going) there, or has failed ``MAX_ATTEMPTS`` times."""
    d = alert_deliveries
    mine = and_(d.c.subject_key == subject_key, d.c.recipient == recipient)
    try:
        with engine.begin() as connection:
            rows = connection.execute(
                select(d.c.status, func.count()).where(mine).group_by(d.c.status)
            ).all()
            counts = {status: n for status, n in rows}
            if counts.get("sent") or counts.get("sending"):
                return None
            failed = counts.get("failed", 0)
            if failed >= MAX_ATTEMPTS:
                return None
            result = connection.execute(
                d.insert().values(
                    rule_id=rule_id,
                    what=what,
                    subject_key=subject_key[:200],
                    recipient=recipient[:300],
                    address=address[:300],
                    channel=channel,
                    title=title,
                    status="sending",
                    attempt=failed + 1,
                    started_at=now,
                )
            )
            return int(result.inserted_primary_key[0])
    except IntegrityError:  # another run claimed it between our look and our insert
        return None


def settled(engine: Engine, what: str) -> set[tuple[str, str]]:
    """(subject_key, recipient) pairs of ``what`` not to try again: sent, being sent, or failed
    ``MAX_ATTEMPTS`` times. One read, so an hourly run does not claim every open case anew
    (``claim`` still decides, this only spares the look)."""
    d = alert_deliveries
    done = (
        select(d.c.subject_key, d.c.recipient)
        .where(d.c.what == what)
        .group_by(d.c.subject_key, d.c.recipient)
        .having(
            (func.sum(case((d.c.status.in_(("sent", "sending")), 1), else_=0)) > 0)
            | (func.sum(case((d.c.status == "failed", 1), else_=0)) >= MAX_ATTEMPTS)
        )
    )
    with engine.connect() as connection:
        return {(row.subject_key, row.recipient) for row in connection.execute(done)}


def finish(engine: Engine, delivery_id: int, *, error: str | None, now: datetime) -> None:
    """Record how an attempt went: sent, or failed with the channel's error."""
    if error is not None:
        error = (error.strip() or "unknown error")[:MAX_ERROR_CHARS]
    with engine.begin() as connection:
        connection.execute(
            update(alert_deliveries)
            .where(alert_deliveries.c.delivery_id == delivery_id)
            .values(status="failed" if error else "sent", finished_at=now, error=error)
        )


def recover_abandoned(engine: Engine, *, now: datetime) -> int:
    """Mark attempts a killed run left ``sending`` as failed (so they are tried again)."""
    d = alert_deliveries
    with engine.begin() as connection:
        return connection.execute(
            update(d)
            .where(d.c.status == "sending", d.c.started_at < now - STALE_SENDING)
            .values(status="failed", finished_at=now, error="abandoned: the run sending it ended")
        ).rowcount


def recent_deliveries(engine: Engine, *, limit: int = 50) -> list[Delivery]:
    """The newest attempts first."""
    d = alert_deliveries
    query = select(d).order_by(d.c.started_at.desc(), d.c.delivery_id.desc()).limit(limit)
    with engine.connect() as connection:
        return [Delivery(**row._mapping) for row in connection.execute(query)]
