"""Ingesting a group of pushed requests as one batch, and each request's own answer from it.

Why groups: the Great Expectations suite costs about a third of a second per call however few
rows it checks, so one batch per one-row request would cap a server at three sales a second.
Requests that arrive while a batch is being written wait in the inbox and go into the next one:
the busier the devices, the bigger the batches, and a sale still lands within a second or two.
The batch path is the files' own (``ingest_frame``): the same suite, dedupe on
(point_id, txn_id), quarantine with reasons, minute and hour aggregates, lineage - all in one
transaction. A request's rows are lines ``offset+1 .. offset+n`` of its group's batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, select, tuple_

from pipeline.intake.feeds import FEED_COLUMNS
from pipeline.intake.ingest import BatchResult, ingest_frame, quarantine_reasons
from pipeline.intake.push.inbox import PendingRequest
from pipeline.intake.validate import validate_chunk
from pipeline.store.schema import ingest_batches, transactions

SOURCE = "push"
_KEY_SLICE = 400  # (point_id, txn_id) pairs per lookup: under SQLite's bound-parameter cap


def ingest_group(
    engine: Engine,
    group_ref: str,
    requests: Sequence[PendingRequest],
    *,
    now: datetime,
    future_tolerance: timedelta,
    earliest: datetime,
) -> tuple[int, list[dict]]:
    """Ingest the group's rows as one batch; returns (batch_id, each request's answer)."""
    records = [row for request in requests for row in request.rows]
    frame = pd.DataFrame.from_records(records, columns=list(FEED_COLUMNS)).astype(object)
    frame = frame.where(pd.notna(frame), None)
    result = ingest_frame(
        engine,
        frame,
        source=SOURCE,
        source_ref=group_ref,
        now=now,
        future_tolerance=future_tolerance,
        earliest=earliest,
    )
    return result.batch_id, answers_from_batch(engine, result, requests)


def warm_up(now: datetime) -> None:
    """Load Great Expectations and the suite once, before the first request waits for it (the
    first validation of a process takes seconds: imports, the context, the suite)."""
    row = {c: None for c in FEED_COLUMNS}
    row.update(txn_id="warm-up", point_id="warm-up", occurred_at=now.isoformat(), amount="0")
    row.update(payment_method="cash", status="paid")
    frame = pd.DataFrame([row], dtype=object)
    validate_chunk(frame, known_point_ids=set(), now=now, future_tolerance=timedelta(minutes=10))


def finished_batch(engine: Engine, group_ref: str) -> BatchResult | None:
    """The group's batch if it committed (a writer died after the commit, before the answers)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(ingest_batches)
            .where(ingest_batches.c.source_ref == group_ref, ingest_batches.c.status == "ok")
            .order_by(ingest_batches.c.batch_id.desc())
        ).first()
    if row is None:
        return None
    return BatchResult(
        batch_id=row.batch_id,
        source=row.source,
        source_ref=row.source_ref,
        status=row.status,
        rows_read=row.rows_read,
        accepted=row.accepted,
        quarantined=row.quarantined,
        duplicates=row.duplicates,
    )


def answers_from_batch(
    engine: Engine, result: BatchResult, requests: Sequence[PendingRequest]
) -> list[dict]:
    """Each request's counts (as ``eincome ingest --json`` gives a file's) and rejected rows."""
    rejected_at = {q["line_no"]: q for q in quarantine_reasons(engine, result.batch_id)}
    stored_here = _stored_keys(engine, result, requests) if result.duplicates else None
    answers, offset, claimed = [], 0, set()
    for request in requests:
        rejected = []
        accepted = duplicates = 0
        for number, row in enumerate(request.rows, start=1):
            bad = rejected_at.get(offset + number)
            if bad is not None:
                rejected.append(
                    {
                        "row": number,
                        "point_id": bad["point_id"],
                        "txn_id": bad["txn_id"],
                        "kind": bad["kind"],
                        "reason": bad["reasons"],
                    }
                )
                continue
            key = _key(row)
            if stored_here is None or (key in stored_here and key not in claimed):
                accepted += 1
                claimed.add(key)
            else:
                duplicates += 1
        offset += len(request.rows)
        answers.append(
            {
                "request_id": request.request_id,
                "batch_id": result.batch_id,
                "rows_read": len(request.rows),
                "accepted": accepted,
                "quarantined": len(rejected),
                "duplicates": duplicates,
                "rejected": rejected,
            }
        )
    return answers


def _key(row: dict) -> tuple[str, str]:
    return (str(row.get("point_id")), str(row.get("txn_id")))


def _stored_keys(
    engine: Engine, result: BatchResult, requests: Sequence[PendingRequest]
) -> set[tuple[str, str]]:
    """Which of the group's keys this batch stored (the others were stored before)."""
    keys = sorted({_key(row) for request in requests for row in request.rows})
    found: set[tuple[str, str]] = set()
    with engine.connect() as connection:
        for start in range(0, len(keys), _KEY_SLICE):
            part = keys[start : start + _KEY_SLICE]
            found.update(
                (r.point_id, r.txn_id)
                for r in connection.execute(
                    select(transactions.c.point_id, transactions.c.txn_id).where(
                        tuple_(transactions.c.point_id, transactions.c.txn_id).in_(part),
                        transactions.c.batch_id == result.batch_id,
                    )
                )
            )
    return found
