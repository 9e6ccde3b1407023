"""The push inbox: the one writer of ``push_requests``.

A push request is committed here (status "pending", its rows as JSON) before it is answered, so
a server killed at any moment afterwards loses nothing: the next writer ingests it. A writer
takes a group of pending requests ("processing", with the group's reference), ingests them as
one batch, and marks each "done" with its own answer. A request id seen again - the same
Idempotency-Key, or the same body - finds its row and is answered from it: a resend changes
nothing. A refusal (bad body, point outside the key, rate) is kept too, as the key's use, but
holds no request id: the device may fix the body and send it again under the same id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from pipeline.store.schema import push_requests
from pipeline.store.upsert import dialect_insert


@dataclass(frozen=True)
class PushRow:
    """One request as the inbox holds it."""

    push_id: int
    key_id: int
    request_id: str
    status: str  # pending | processing | done
    body_sha256: str | None
    rows: int
    response: dict | None


@dataclass(frozen=True)
class PendingRequest:
    """A request a writer took: its rows, in body order."""

    push_id: int
    request_id: str
    rows: list[dict]


def _row(result) -> PushRow:
    return PushRow(
        push_id=result.push_id,
        key_id=result.key_id,
        request_id=result.request_id,
        status=result.status,
        body_sha256=result.body_sha256,
        rows=result.rows or 0,
        response=json.loads(result.response) if result.response else None,
    )


_COLUMNS = (
    push_requests.c.push_id,
    push_requests.c.key_id,
    push_requests.c.request_id,
    push_requests.c.status,
    push_requests.c.body_sha256,
    push_requests.c.rows,
    push_requests.c.response,
)


def record_refusal(
    connection: Connection,
    key_id: int,
    request_id: str,
    status_code: int,
    message: str,
    now: datetime,
) -> None:
    """Keep a refused request as the key's use (nothing of it is ingested)."""
    connection.execute(
        insert(push_requests).values(
            key_id=key_id,
            request_id=request_id[:128],
            received_at=now,
            status="refused",
            status_code=status_code,
            response=json.dumps({"error": message}, ensure_ascii=False),
            finished_at=now,
        )
    )


def submit(
    connection: Connection,
    key_id: int,
    request_id: str,
    body_sha256: str,
    rows: list[dict],
    now: datetime,
) -> tuple[PushRow, bool]:
    """Put a request in the inbox, in the caller's transaction; returns (its row, whether it
    was new). A request id the key already used returns the row it has (pending, processing or
    done) and False. ON CONFLICT, not a caught IntegrityError: on PostgreSQL an error would
    abort the caller's transaction (the key's read, a refusal to record) and a savepoint costs
    two more round trips."""
    push_id = connection.execute(
        _submit_statement(connection),
        {
            "key_id": key_id,
            "request_id": request_id,
            "received_at": now,
            "status": "pending",
            "body_sha256": body_sha256,
            "rows": len(rows),
            "body": json.dumps(rows, ensure_ascii=False, default=str),
        },
    ).scalar()
    if push_id is not None:
        return PushRow(push_id, key_id, request_id, "pending", body_sha256, len(rows), None), True
    # A concurrent first arrival is waited for by the INSERT (PostgreSQL) or serialised by the
    # database lock (SQLite): the row is committed by now.
    found = _find(connection, key_id, request_id)
    if found is None:
        raise RuntimeError(f"push request {request_id!r} clashed but is not in the inbox")
    return found, False


_SUBMIT_BY_DIALECT: dict = {}


def _submit_statement(connection: Connection):
    # Built once per dialect, its values bound at execution: building the statement anew cost
    # more CPU than its round trip, a thousand times a second.
    dialect = connection.dialect.name
    if dialect not in _SUBMIT_BY_DIALECT:
        _SUBMIT_BY_DIALECT[dialect] = (
            dialect_insert(connection, push_requests)
            .on_conflict_do_nothing(
                index_elements=["key_id", "request_id"], index_where=_LIVE_REQUEST
            )
            .returning(push_requests.c.push_id)
        )
    return _SUBMIT_BY_DIALECT[dialect]


# The predicate of ux_push_requests_key_request, as the schema writes it (ON CONFLICT names the
# partial index by its columns and this predicate).
_LIVE_REQUEST = text("status <> 'refused'")


def find(engine: Engine, key_id: int, request_id: str) -> PushRow | None:
    with engine.connect() as connection:
        return _find(connection, key_id, request_id)


def _find(connection: Connection, key_id: int, request_id: str) -> PushRow | None:
    result = connection.execute(
        select(*_COLUMNS).where(
            push_requests.c.key_id == key_id,
            push_requests.c.request_id == request_id,
            push_requests.c.status != "refused",
        )
    ).first()
    return None if result is None else _row(result)


def get(engine: Engine, push_id: int) -> PushRow | None:
    with engine.connect() as connection:
        result = connection.execute(
            select(*_COLUMNS).where(push_requests.c.push_id == push_id)
        ).first()
    return None if result is None else _row(result)


def take_group(
    engine: Engine, group_ref: str, *, max_rows: int, now: datetime
) -> list[PendingRequest]:
    """Take pending requests, oldest first, up to ``max_rows`` rows (at least one request), for
    one writer: they become "processing" under ``group_ref``. Two writers never take the same
    request (PostgreSQL: SKIP LOCKED; SQLite: one writer at a time)."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA busy_timeout = 30000")
            connection.commit()
        with connection.begin():
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            query = (
                select(push_requests.c.push_id, push_requests.c.rows)
                .where(push_requests.c.status == "pending")
                .order_by(push_requests.c.push_id)
                .limit(max(1, max_rows))  # a request has at least one row
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            chosen, total = [], 0
            for push_id, rows in connection.execute(query):
                if chosen and total + rows > max_rows:
                    break
                chosen.append(push_id)
                total += rows
            if not chosen:
                return []
            connection.execute(
                update(push_requests)
                .where(push_requests.c.push_id.in_(chosen))
                .values(status="processing", group_ref=group_ref, claimed_at=now)
            )
            taken = connection.execute(
                select(push_requests.c.push_id, push_requests.c.request_id, push_requests.c.body)
                .where(push_requests.c.push_id.in_(chosen))
                .order_by(push_requests.c.push_id)
            ).all()
    return [PendingRequest(r.push_id, r.request_id, json.loads(r.body)) for r in taken]


def group_rows(engine: Engine, group_ref: str) -> list[PendingRequest]:
    """The requests of a group still processing (to finish a group a dead writer left)."""
    with engine.connect() as connection:
        taken = connection.execute(
            select(push_requests.c.push_id, push_requests.c.request_id, push_requests.c.body)
            .where(push_requests.c.group_ref == group_ref, push_requests.c.status == "processing")
            .order_by(push_requests.c.push_id)
        ).all()
    return [PendingRequest(r.push_id, r.request_id, json.loads(r.body)) for r in taken]


def finish(engine: Engine, answers: list[tuple[int, int | None, int, dict]], now: datetime) -> None:
    """Mark requests done: (push_id, batch_id, status code, answer). Their rows are now in the
    batch (or its quarantine), so the inbox copy is dropped."""
    with engine.begin() as connection:
        for push_id, batch_id, status_code, answer in answers:
            connection.execute(
                update(push_requests)
                .where(push_requests.c.push_id == push_id)
                .values(
                    status="done",
                    status_code=status_code,
                    batch_id=batch_id,
                    response=json.dumps(answer, ensure_ascii=False),
                    body=None,
                    finished_at=now,
                )
            )


def release_group(engine: Engine, group_ref: str) -> None:
    """Put a group's requests back in the inbox (its batch failed; the next writer retries)."""
    with engine.begin() as connection:
        connection.execute(
            update(push_requests)
            .where(push_requests.c.group_ref == group_ref, push_requests.c.status == "processing")
            .values(status="pending", group_ref=None, claimed_at=None)
        )


def processing_groups(engine: Engine) -> list[tuple[str, datetime]]:
    """(group_ref, taken at) of every group a writer is processing (or died processing)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(push_requests.c.group_ref, func.min(push_requests.c.claimed_at))
            .where(push_requests.c.status == "processing")
            .group_by(push_requests.c.group_ref)
        ).all()
    return [(r[0], _aware(r[1])) for r in rows]


def done_among(engine: Engine, push_ids: list[int]) -> list[int]:
    """Which of ``push_ids`` are done (answered)."""
    found: list[int] = []
    with engine.connect() as connection:
        for start in range(0, len(push_ids), 500):
            found.extend(
                connection.execute(
                    select(push_requests.c.push_id).where(
                        push_requests.c.push_id.in_(push_ids[start : start + 500]),
                        push_requests.c.status == "done",
                    )
                ).scalars()
            )
    return found


def has_pending(engine: Engine) -> bool:
    with engine.connect() as connection:
        return (
            connection.execute(
                select(push_requests.c.push_id).where(push_requests.c.status == "pending").limit(1)
            ).first()
            is not None
        )


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).where(push_requests.c.status.in_(("pending", "processing")))
        ).scalar_one()


def key_use(engine: Engine) -> dict[int, tuple[int, datetime | None]]:
    """Per key: (requests received, the latest one's time), refusals included."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                push_requests.c.key_id,
                func.count(),
                func.max(push_requests.c.received_at),
            ).group_by(push_requests.c.key_id)
        ).all()
    return {r[0]: (r[1], _aware(r[2])) for r in rows}


def _aware(value):
    # func.max loses the column type on SQLite: the text comes back naive.
    if value is None or isinstance(value, datetime) and value.tzinfo:
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)
