"""The push service of one server process: takes requests into the inbox, runs the writer that
ingests them in groups, and tells each waiting request when its answer is ready.

A request is answered only after its row in the inbox is committed: from then on nothing of it
can be lost (a killed server's inbox is ingested by the next one) or doubled (a resend finds
its row; a row already stored is a duplicate). A device that wants its counts waits (up to
``answer_wait_seconds``, usually well under two); one that says ``Prefer: respond-async`` is
answered 202 at once and may fetch the counts later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.intake.ingest import BatchFailedError
from pipeline.intake.push import inbox
from pipeline.intake.push.body import PushLimits, PushRefused, body_sha256, parse_rows
from pipeline.intake.push.group import answers_from_batch, finished_batch, ingest_group, warm_up
from pipeline.intake.push.keys import ApiKey, key_presented
from pipeline.intake.push.rate import RateLimiter

log = logging.getLogger("eincome.push")
REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # visible ASCII, as HTTP header values go
GROUP_MAX_ROWS = 5_000
RECOVER_EVERY = timedelta(seconds=5)
# A group still "processing" after this long was left by a writer that died (on another host,
# where its process cannot be checked): taken again.
STALE_GROUP = timedelta(seconds=60)
POLL_DONE = 0.2  # seconds between two looks at which waiting requests are done
# Seconds between two looks for pending requests when no request of this process woke the
# writer: ``eincome serve`` runs it as a process of its own, so every pushed sale waits for
# this look (an indexed one-row query) before it can reach a dashboard.
POLL_PENDING = 0.2


@dataclass(frozen=True)
class Receipt:
    """A request in the inbox: its row, and whether this was its first arrival."""

    row: inbox.PushRow
    new: bool


def status_path(request_id: str) -> str:
    return f"/api/v1/transactions/requests/{request_id}"


def answer_of(row: inbox.PushRow, *, replayed: bool) -> tuple[int, dict]:
    """The HTTP status and JSON for a request in the inbox (done: its counts; else: pending)."""
    if row.status == "done" and row.response is not None:
        return 200, {**row.response, "status": "done", "replayed": replayed}
    return 202, {
        "request_id": row.request_id,
        "status": "pending",
        "rows_read": row.rows,
        "status_url": status_path(row.request_id),
    }


class PushService:
    def __init__(
        self,
        engine: Engine,
        limits: PushLimits,
        *,
        future_tolerance: timedelta,
        earliest: datetime,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.engine = engine
        self.limits = limits
        self.future_tolerance = future_tolerance
        self.earliest = earliest
        self.clock = clock
        self.rates = RateLimiter(limits.rate_per_second, limits.burst)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiters: dict[int, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self._lock = threading.Lock()
        self._owner = f"{socket.gethostname()}-{os.getpid()}"
        self._recovered_at: datetime | None = None
        self._poller: asyncio.Task | None = None

    # --- taking requests ------------------------------------------------------------------

    def check_rate(self, key: ApiKey) -> None:
        wait = self.rates.take(key.key_id)
        if wait:
            message = (
                f"key {key.prefix} sends more than {self.limits.rate_per_second:g} requests a "
                f"second; retry in {wait:.1f} s (batch rows into fewer requests)"
            )
            raise PushRefused(429, message, retry_after=wait)

    def receive(
        self,
        presented: str | None,
        body: bytes | None,
        content_type: str | None,
        idempotency_key: str | None,
        *,
        refused: PushRefused | None = None,
    ) -> Receipt:
        """Authenticate a request and put it in the inbox (or find it there), in one
        transaction on one connection: the key's read, its rate, the body's checks, the insert
        and the commit. ``refused``: the body was refused while it was read (413); it is
        recorded as the key's use like every other refusal. Raises KeyRefused (401, nothing
        recorded: no key to record it for) or PushRefused (recorded, then raised)."""
        now = self.clock()
        sha = body_sha256(body or b"")
        request_id = f"sha256:{sha}" if idempotency_key is None else idempotency_key.strip()
        refusal = refused
        with self.engine.begin() as connection:
            key = key_presented(connection, presented)
            try:
                if refusal is not None:
                    raise refusal
                self.check_rate(key)
                receipt = self._store(
                    connection, key, body or b"", content_type, request_id, sha, now
                )
            except PushRefused as exc:
                refusal = exc
                inbox.record_refusal(
                    connection,
                    key.key_id,
                    request_id if refused is None else "(refused)",
                    exc.status,
                    str(exc),
                    now,
                )
        if refusal is not None:
            raise refusal
        if receipt.new:
            self._wake.set()
        return receipt

    def _store(
        self,
        connection,
        key: ApiKey,
        body: bytes,
        content_type: str | None,
        request_id: str,
        sha: str,
        now: datetime,
    ) -> Receipt:
        if not REQUEST_ID.match(request_id):
            raise PushRefused(
                400, "Idempotency-Key must be 1 to 128 visible ASCII characters (a UUID)"
            )
        rows = parse_rows(body, content_type, self.limits)
        outside = sorted(
            {str(r["point_id"]) for r in rows if r["point_id"] is not None} - set(key.point_ids)
        )
        if outside:
            raise PushRefused(
                403,
                f"key {key.prefix} may not push for point {', '.join(outside[:5])}"
                + (f" (and {len(outside) - 5} more)" if len(outside) > 5 else "")
                + f"; it covers {', '.join(key.point_ids)}",
            )
        row, new = inbox.submit(connection, key.key_id, request_id, sha, rows, now)
        if not new and row.body_sha256 != sha:
            raise PushRefused(
                422,
                f"Idempotency-Key {request_id!r} was used before for a different body; "
                "use a new key for new rows",
            )
        return Receipt(row, new)

    def lookup(self, key: ApiKey, request_id: str) -> inbox.PushRow | None:
        return inbox.find(self.engine, key.key_id, request_id)

    async def wait_answer(self, receipt: Receipt) -> tuple[int, dict]:
        """The request's answer once the writer has it, or its pending answer after the wait."""
        row = receipt.row
        replayed = not receipt.new
        if row.status == "done":
            return answer_of(row, replayed=replayed)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._waiters.setdefault(row.push_id, []).append((loop, future))
        self._ensure_poller(loop)
        try:
            await asyncio.wait_for(future, timeout=self.limits.answer_wait_seconds)
        except TimeoutError:
            pass
        finally:
            self._forget(row.push_id, future)
        current = await asyncio.to_thread(inbox.get, self.engine, row.push_id)
        return answer_of(current or row, replayed=replayed)

    def _ensure_poller(self, loop: asyncio.AbstractEventLoop) -> None:
        # The writer may be another process (``eincome serve`` runs it apart, so its Great
        # Expectations work never holds this process's GIL): one query a fifth of a second
        # looks up which waiting requests are done, however many are waiting.
        if self._poller is None or self._poller.done():
            self._poller = loop.create_task(self._poll_done())

    async def _poll_done(self) -> None:
        while True:
            with self._lock:
                waiting = list(self._waiters)
            if not waiting:
                return
            try:
                done = await asyncio.to_thread(inbox.done_among, self.engine, waiting)
            except SQLAlchemyError:
                log.warning("push: cannot read the inbox; waiting requests keep waiting")
                done = []
            self._notify(done)
            await asyncio.sleep(POLL_DONE)

    def _forget(self, push_id: int, future: asyncio.Future) -> None:
        with self._lock:
            left = [w for w in self._waiters.get(push_id, ()) if w[1] is not future]
            if left:
                self._waiters[push_id] = left
            else:
                self._waiters.pop(push_id, None)

    # --- the writer -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="push-writer", daemon=True)
            self._thread.start()

    def run_forever(self) -> None:
        """Be the writer in this thread until ``stop`` (the `eincome push-writer` process)."""
        self._run()

    def halt(self) -> None:
        """Ask the writer to stop after the group it is on (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            warm_up(self.clock())
        except Exception:  # a broken suite shows on the first real group, with its message
            log.exception("push writer: warming up the expectation suite failed")
        woke = True  # at start: a killed server may have left requests in the inbox
        while not self._stop.is_set():
            try:
                self.recover_if_due()
                # Requests the web processes took in: the read-only look every POLL_PENDING
                # finds them (and those a dead worker left behind).
                if woke or inbox.has_pending(self.engine):
                    while not self._stop.is_set() and self.write_one_group():
                        pass
            except Exception:  # the writer must outlive any one failure; the inbox keeps the rows
                log.exception("push writer: a group failed; its requests stay in the inbox")
                self._stop.wait(1.0)
            woke = self._wake.wait(timeout=POLL_PENDING)
            self._wake.clear()

    def write_one_group(self) -> bool:
        """Take one group from the inbox and ingest it; False when the inbox is empty."""
        group_ref = f"push {self._owner} {uuid.uuid4().hex[:12]}"
        taken = inbox.take_group(self.engine, group_ref, max_rows=GROUP_MAX_ROWS, now=self.clock())
        if not taken:
            return False
        started = time.perf_counter()
        try:
            batch_id, answers = ingest_group(
                self.engine,
                group_ref,
                taken,
                now=self.clock(),
                future_tolerance=self.future_tolerance,
                earliest=self.earliest,
            )
        except (BatchFailedError, SQLAlchemyError, RuntimeError) as exc:
            # Not the rows' fault (the database went away, a concurrent writer): back to the
            # inbox, the next round retries them.
            log.warning("push writer: %s: %s; retrying", group_ref, exc)
            inbox.release_group(self.engine, group_ref)
            self._stop.wait(1.0)
            return False
        self._finish(taken, batch_id, answers)
        log.info(
            "push writer: batch %s, %s requests, %s rows in %.2f s",
            batch_id,
            len(taken),
            sum(len(r.rows) for r in taken),
            time.perf_counter() - started,
        )
        return True

    def _finish(self, taken, batch_id: int, answers: list[dict]) -> None:
        inbox.finish(
            self.engine,
            [(r.push_id, batch_id, 200, a) for r, a in zip(taken, answers, strict=True)],
            self.clock(),
        )
        self._notify([r.push_id for r in taken])

    def recover_if_due(self) -> None:
        """Finish or return the groups a dead writer left: its batch committed (answers are
        rebuilt from it) or not (the requests go back to the inbox)."""
        now = self.clock()
        if self._recovered_at is not None and now - self._recovered_at < RECOVER_EVERY:
            return
        self._recovered_at = now
        for group_ref, taken_at in inbox.processing_groups(self.engine):
            if not _writer_gone(group_ref) and now - taken_at < STALE_GROUP:
                continue
            taken = inbox.group_rows(self.engine, group_ref)
            batch = finished_batch(self.engine, group_ref)
            if batch is None:
                log.warning("push writer: %s was left unfinished; back in the inbox", group_ref)
                inbox.release_group(self.engine, group_ref)
                self._wake.set()
                continue
            log.warning("push writer: %s was stored but not answered; answering", group_ref)
            self._finish(taken, batch.batch_id, answers_from_batch(self.engine, batch, taken))

    def _notify(self, push_ids: list[int]) -> None:
        with self._lock:
            waiting = [w for push_id in push_ids for w in self._waiters.pop(push_id, ())]
        for loop, future in waiting:
            loop.call_soon_threadsafe(_resolve, future)


def _writer_gone(group_ref: str) -> bool:
    """Whether the group's writer (``push <host>-<pid> <id>``) is a process here that is gone."""
    owner = group_ref.split(" ")[1] if group_ref.count(" ") >= 2 else ""
    host, _, pid = owner.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
