"""The batch record: its lineage row, the process that owns it, its lock, and the recovery of
batches a killed process left "running"."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from pipeline.store.schema import ingest_batches

DEFAULT_CHUNK_ROWS = 200_000
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=10)
# How long a batch waits for another SQLite writer (a long ingest) before giving up.
SQLITE_LOCK_WAIT = timedelta(minutes=15)
# A running batch whose owner cannot be checked (another host, an older version) is taken for
# abandoned after this long; the largest feeds ingest in minutes.
STALE_AFTER = timedelta(hours=6)
_LOCK_CLASS = 0x45494E43  # "EINC": PostgreSQL advisory locks of running batches


@dataclass
class BatchResult:
    """What happened to one unit of input; the same figures are in its ``ingest_batches`` row."""

    batch_id: int
    source: str
    source_ref: str
    status: str  # ok | partial | failed | rejected
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    lines_read: int | None = None
    message: str | None = None
    # Wall seconds per stage (read, validate, store, aggregate): where the time went.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return self.source_ref

    def as_dict(self) -> dict:
        return {"file": self.source_ref, **asdict(self)}


ProgressCallback = Callable[[int], None]


class BatchFailedError(Exception):
    """A batch failed for a reason that is not its input (the database went away, a disk
    filled): everything it wrote is rolled back, its row says "failed", rerunning is safe.
    ``batch_id`` names the batch (None if it could not even be recorded)."""

    def __init__(self, message: str, batch_id: int | None = None):
        super().__init__(message)
        self.batch_id = batch_id


def _one_line(exc: BaseException) -> str:
    """A database error as one readable line, without the SQL and parameters."""
    inner = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    text_ = str(inner if inner is not None else exc).strip()
    return f"{type(inner or exc).__name__}: {text_.splitlines()[0] if text_ else ''}"[:500]


# --- the batch ----------------------------------------------------------------------------


def _file_sha256(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None  # read_feed reports the unreadable file with its reason


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _this_owner() -> str:
    return f"{socket.gethostname()} {os.getpid()} {_process_start(os.getpid())}".strip()


def _wait_for_writers(connection: Connection, wait: timedelta = SQLITE_LOCK_WAIT) -> None:
    """SQLite: wait this long for another writer's lock instead of "database is locked"."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait.total_seconds() * 1000)}")


def _open_batch(connection: Connection, source: str, source_ref: str, sha256: str | None) -> int:
    """Record the batch as running, owned by this process, and commit. On PostgreSQL the
    connection also takes a session lock on the batch, held until the batch ends: if the
    process dies, the server ends its session and frees the lock, and
    ``recover_abandoned_batches`` can tell."""
    batch_id = connection.execute(
        insert(ingest_batches)
        .values(
            source=source,
            source_ref=source_ref,
            sha256=sha256,
            started_at=datetime.now(UTC),
            status="running",
            owner=_this_owner(),
        )
        .returning(ingest_batches.c.batch_id)
    ).scalar_one()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_lock(:c, :b)"), {"c": _LOCK_CLASS, "b": batch_id}
        )
    connection.commit()
    return batch_id


def _release_batch_lock(connection: Connection, batch_id: int) -> None:
    if connection.dialect.name != "postgresql":
        return
    try:
        connection.rollback()
        connection.execute(
            text("SELECT pg_advisory_unlock(:c, :b)"), {"c": _LOCK_CLASS, "b": batch_id}
        )
        connection.commit()
    except SQLAlchemyError:
        pass  # the session is gone (terminated backend): the server freed its locks


def _close_batch(engine: Engine, batch_id: int | None, status: str, message: str) -> None:
    if batch_id is None:
        return
    try:
        with engine.begin() as connection:
            _wait_for_writers(connection)
            connection.execute(
                update(ingest_batches)
                .where(ingest_batches.c.batch_id == batch_id)
                .values(status=status, message=message[:4000], finished_at=datetime.now(UTC))
            )
    except SQLAlchemyError:
        # The database itself is failing: the error being raised says why; the batch stays
        # "running" until recover_abandoned_batches sees its owner gone.
        pass


def _owner_gone(owner: str) -> str | None:
    """Why the process named by ``owner`` is certainly gone, or None if it may be running."""
    host, _, rest = owner.partition(" ")
    pid_text, _, started = rest.partition(" ")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"its process (pid {pid} on {host}) is gone"
    except PermissionError:
        pass  # alive, another user's
    if started and _process_start(pid) not in ("", started):
        return f"its process (pid {pid} on {host}) is gone; the pid now belongs to another"
    return None


def recover_abandoned_batches(
    engine: Engine, *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER
) -> list[dict]:
    """Mark failed every batch left "running" by a process that is gone; returns them
    (batch_id, source_ref, message) for the ops page.

    Decided safely, never by age alone when the owner can be checked: on PostgreSQL a batch is
    abandoned when its session lock is free (the server ends a killed process's session); on
    SQLite when its process (same host) no longer exists or its pid belongs to another
    process. A batch whose owner cannot be checked (another host, recorded by an older
    version) is abandoned after ``stale_after``. Nothing of an abandoned batch is stored: its
    data was one transaction that never committed.
    """
    now = now or datetime.now(UTC)
    found = []
    with engine.connect() as connection:
        _wait_for_writers(connection)
        running = connection.execute(
            select(
                ingest_batches.c.batch_id,
                ingest_batches.c.source_ref,
                ingest_batches.c.owner,
                ingest_batches.c.started_at,
            ).where(ingest_batches.c.status == "running")
        ).all()
        connection.commit()
        for batch in running:
            why = None
            if batch.owner and connection.dialect.name == "postgresql":
                free = connection.execute(
                    text("SELECT pg_try_advisory_lock(:c, :b)"),
                    {"c": _LOCK_CLASS, "b": batch.batch_id},
                ).scalar_one()
                if free:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:c, :b)"),
                        {"c": _LOCK_CLASS, "b": batch.batch_id},
                    )
                    why = f"its database session ended ({batch.owner})"
                connection.commit()
            elif batch.owner:
                why = _owner_gone(batch.owner)
            if why is None and batch.started_at < now - stale_after:
                if not batch.owner or not batch.owner.startswith(socket.gethostname() + " "):
                    why = f"it was still running after {stale_after} and its owner ({batch.owner or 'unrecorded'}) cannot be checked from here"
            if why is None:
                continue
            message = f"abandoned: {why}; nothing of it was stored; ingest the input again"
            with connection.begin():
                done = connection.execute(
                    update(ingest_batches)
                    .where(
                        ingest_batches.c.batch_id == batch.batch_id,
                        ingest_batches.c.status == "running",
                    )
                    .values(status="failed", message=message, finished_at=now)
                ).rowcount
            if done:
                found.append(
                    {"batch_id": batch.batch_id, "source_ref": batch.source_ref, "message": message}
                )
    return found
