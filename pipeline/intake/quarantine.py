"""Quarantine you can work: list and export quarantined rows across batches, and release
(re-admit) them once the cause is fixed - a point added to the registry later, a time zone known.

A release takes the open rows it is given (by filter or by id), claims them, and sends their raw
rows through the ingest path again (``ingest_rows``: the same Great Expectations suite, dedupe,
aggregates, freshness and lineage), one batch per source they first came by, so nothing here
validates anything itself. What became of each row is written on it: ``stored`` (the transaction
now belongs to the release's batch), ``duplicate`` (the same sale was stored by then - resent
and accepted since, or released twice from two copies) or ``requarantined`` (still bad: the
batch quarantined it again with today's reason, ``requarantined_as`` names that new, open row).
Every release is a row of ``quarantine_releases`` (who, when, what was asked, the counts).

Idempotent: a row is released once - only open rows are claimed, under the claim's own
transaction - so releasing the same selection again finds nothing; and were a row ever
offered twice, the transactions' key makes the second a duplicate, never a second sale.
A release that fails hands its rows back (open again). One killed outright leaves its rows
claimed; after ``STALE_RELEASE`` they may be claimed again, and what its batch did commit comes
back as duplicates.

This module and ``ingest.chunks`` (which writes new quarantine rows) are the writers of
``quarantine``; this one alone writes ``quarantine_releases``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, Engine, and_, bindparam, func, insert, or_, select, text, update

from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.core.phrases import Phrase, phrase
from pipeline.intake.feeds import FEED_COLUMNS, frame_chunk
from pipeline.intake.ingest import DEFAULT_FUTURE_TOLERANCE, ingest_rows
from pipeline.intake.validate import DEFAULT_EARLIEST
from pipeline.reference.points import known_points
from pipeline.store.schema import (
    MAX_ROW_ID,
    ingest_batches,
    quarantine,
    quarantine_releases,
    transactions,
)

# What a listing shows by the row's state: open (not released yet), released (stored or found
# already stored), requarantined (still bad when released: its new row is open), or all.
STATES = ("open", "released", "requarantined", "all")
OUTCOMES = ("stored", "duplicate", "requarantined")
# A release still "running" after this was killed: its rows may be claimed again.
STALE_RELEASE = timedelta(hours=1)
CLAIM_LOCK = 0x65696E71  # "einq": PostgreSQL's advisory lock key for claiming rows
# One release takes at most this many rows (a web request must end; the CLI can repeat).
MAX_RELEASE_ROWS = 100_000
EXPORT_COLUMNS = ("quarantine_id", "batch_id", "source", "quarantined_at", "line_no", "point_id",
                  "txn_id", "kind", "reasons", "state", "release_id", "raw")  # fmt: skip


@dataclass(frozen=True)
class QuarantineFilter:
    """Which quarantined rows: every field optional; times are UTC bounds of when the row was
    quarantined (its batch's start), ``end`` exclusive."""

    source: str | None = None
    point_id: str | None = None
    reason: str | None = None  # a piece of the reasons text, any case
    start: datetime | None = None
    end: datetime | None = None
    state: str = "open"
    ids: tuple[int, ...] = ()  # only these quarantine ids

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise UnusableInputError.said(
                "state %(state)r is not one of %(choices)s",
                state=self.state,
                choices=", ".join(STATES),
            )
        bad = [i for i in self.ids if not 0 < i <= MAX_ROW_ID]
        if bad:
            raise UnusableInputError.said("quarantine id %(id)s does not exist", id=bad[0])

    def criteria(self) -> dict:
        """As recorded on a release: the filters given (times ISO-8601)."""
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), "")}
        for key in ("start", "end"):
            if key in out:
                out[key] = out[key].isoformat()
        if "ids" in out:
            out["ids"] = list(out["ids"])
        return out


@dataclass(frozen=True)
class QuarantinePage:
    rows: list  # quarantine rows with the batch's source and start (quarantined_at)
    total: int
    page: int
    pages: int


@dataclass
class ReleaseResult:
    release_id: int | None  # None: nothing was open to release
    selected: int = 0
    stored: int = 0
    duplicates: int = 0
    still_bad: int = 0
    skipped: int = 0  # lines that were never rows (malformed): they stay open
    batch_ids: list[int] = field(default_factory=list)

    def summary(self) -> Phrase:
        """What the release did, as the app's message and the command's output say it."""
        return phrase(
            "Release %(id)s: %(selected)s rows re-validated; %(stored)s stored, "
            "%(duplicates)s already stored, %(still_bad)s still bad (quarantined again with "
            "the new reason), %(skipped)s not rows (left open).",
            id=self.release_id,
            selected=self.selected,
            stored=self.stored,
            duplicates=self.duplicates,
            still_bad=self.still_bad,
            skipped=self.skipped,
        )


def _where(f: QuarantineFilter):
    q, b = quarantine.c, ingest_batches.c
    clauses = []
    if f.source:
        clauses.append(b.source == f.source)
    if f.point_id:
        clauses.append(q.point_id == f.point_id)
    if f.reason:
        pattern = f.reason.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(func.lower(q.reasons).like(f"%{pattern}%", escape="\\"))
    if f.start:
        clauses.append(b.started_at >= f.start)
    if f.end:
        clauses.append(b.started_at < f.end)
    if f.ids:
        clauses.append(q.quarantine_id.in_(f.ids))
    if f.state == "open":
        clauses.append(q.release_outcome.is_(None))
    elif f.state == "released":
        clauses.append(q.release_outcome.in_(("stored", "duplicate")))
    elif f.state == "requarantined":
        clauses.append(q.release_outcome == "requarantined")
    return and_(*clauses)


def _listing(f: QuarantineFilter):
    q, b = quarantine.c, ingest_batches.c
    return (
        select(quarantine, b.source, b.started_at.label("quarantined_at"))
        .join(ingest_batches, b.batch_id == q.batch_id)
        .where(_where(f))
    )


def list_quarantine(
    engine: Engine, f: QuarantineFilter, page: int = 1, *, page_size: int = 25
) -> QuarantinePage:
    """One page of the rows ``f`` selects, newest first."""
    with engine.connect() as connection:
        total = connection.execute(
            select(func.count())
            .select_from(
                quarantine.join(ingest_batches, ingest_batches.c.batch_id == quarantine.c.batch_id)
            )
            .where(_where(f))
        ).scalar_one()
        rows = connection.execute(
            _listing(f)
            .order_by(quarantine.c.quarantine_id.desc())
            .limit(page_size)
            .offset((page - 1) * page_size)
        ).all()
    return QuarantinePage(rows, total, page, max(1, -(-total // page_size)))


def row_state(row) -> str:
    """open | released | requarantined, from a quarantine row's outcome."""
    if row.release_outcome is None:
        return "open"
    return "requarantined" if row.release_outcome == "requarantined" else "released"


def export_quarantine_csv(engine: Engine, f: QuarantineFilter) -> tuple[bytes, int]:
    """Every row ``f`` selects as CSV (UTF-8 with a BOM, so a spreadsheet reads it), oldest
    first, read from the database in one pass; and how many rows it holds."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    rows = 0
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(
            _listing(f).order_by(quarantine.c.quarantine_id)
        )
        for row in result:
            rows += 1
            writer.writerow(
                [
                    row.quarantine_id,
                    row.batch_id,
                    row.source,
                    row.quarantined_at.isoformat(),
                    row.line_no,
                    row.point_id,
                    row.txn_id,
                    row.kind,
                    row.reasons,
                    row_state(row),
                    row.release_id,
                    row.raw,
                ]  # fmt: skip
            )
    return out.getvalue().encode("utf-8"), rows


# ----------------------------------------------------------------------------- release


def release_quarantine(
    engine: Engine,
    f: QuarantineFilter,
    *,
    actor: str,
    now: datetime | None = None,
    naive_times_in_point_zone: bool = False,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    earliest: datetime = DEFAULT_EARLIEST,
) -> ReleaseResult:
    """Re-admit the open rows ``f`` selects through the ingest path; see the module docstring.

    ``naive_times_in_point_zone``: a time written without a UTC offset is read in its point's
    registered time zone (the fix for a feed that left the offset out); recorded on the release.
    """
    if f.state != "open":
        raise UnusableInputError.said(
            "only open rows can be released, not %(state)s ones", state=f.state
        )
    now = now or datetime.now(UTC)
    criteria = {**f.criteria(), "naive_times_in_point_zone": naive_times_in_point_zone}
    release_id, claimed = _claim(engine, f, actor, now, criteria)
    if release_id is None:
        return ReleaseResult(None)
    try:
        result = _readmit(
            engine, release_id, claimed, now, naive_times_in_point_zone, future_tolerance, earliest
        )
    except BaseException as exc:
        _give_back(engine, release_id, f"{type(exc).__name__}: {exc}")
        raise
    return result


def _claim(engine: Engine, f: QuarantineFilter, actor: str, now: datetime, criteria: dict):
    """Record the release and take its rows, in one transaction: (release id, claimed rows) or
    (None, []) when no open row matches. Open = no outcome and not held by a live release."""
    q, r = quarantine.c, quarantine_releases.c
    with engine.connect() as connection, _writing(connection):
        if connection.dialect.name == "postgresql":
            # Claims one at a time: a claim that waited for another's rows must see that
            # release as live, which its statements only do once they start after its commit.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK})
        live = select(r.release_id).where(
            r.status == "running", r.started_at >= now - STALE_RELEASE
        )
        free = or_(q.release_id.is_(None), q.release_id.not_in(live))
        wanted = (
            connection.execute(
                select(q.quarantine_id)
                .select_from(
                    quarantine.join(
                        ingest_batches, ingest_batches.c.batch_id == quarantine.c.batch_id
                    )
                )
                .where(_where(f), free)
                .order_by(q.quarantine_id)
                .limit(MAX_RELEASE_ROWS)
            )
            .scalars()
            .all()
        )
        if not wanted:
            return None, []
        release_id = connection.execute(
            insert(quarantine_releases)
            .values(
                actor=actor,
                started_at=now,
                status="running",
                selected=0,
                stored=0,
                duplicates=0,
                still_bad=0,
                skipped=0,
                criteria=json.dumps(criteria, ensure_ascii=False),
            )  # fmt: skip
            .returning(r.release_id)
        ).scalar_one()
        claimed_ids = []
        for part in _parts(wanted):
            # Re-checked in the UPDATE: a concurrent release that took a row first keeps it.
            claimed_ids += (
                connection.execute(
                    update(quarantine)
                    .where(q.quarantine_id.in_(part), q.release_outcome.is_(None), free)
                    .values(release_id=release_id)
                    .returning(q.quarantine_id)
                )
                .scalars()
                .all()
            )
        claimed = connection.execute(
            select(q.quarantine_id, q.kind, q.raw, ingest_batches.c.source)
            .join(ingest_batches, ingest_batches.c.batch_id == q.batch_id)
            .where(q.release_id == release_id, q.release_outcome.is_(None))
            .order_by(q.quarantine_id)
        ).all()
        connection.execute(
            update(quarantine_releases)
            .where(r.release_id == release_id)
            .values(selected=len(claimed))
        )
    return release_id, claimed


@contextmanager
def _writing(connection: Connection):
    """A transaction that holds the write lock from its start on SQLite (as ingest's batches
    do): a deferred one that read first would fail at once, not wait, were another writer to
    commit in between. PostgreSQL re-checks each UPDATE's condition on the row it locks."""
    if connection.dialect.name == "sqlite":
        connection.commit()  # ends SQLAlchemy's autobegun transaction; SQLite had none
        with connection.begin():
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield
        return
    with connection.begin():
        yield


def _parts(ids: Sequence[int], size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _reopen_unsettled(connection, release_id: int) -> None:
    """The rows release ``release_id`` claimed and settled no outcome for are open again."""
    q = quarantine.c
    connection.execute(
        update(quarantine)
        .where(q.release_id == release_id, q.release_outcome.is_(None))
        .values(release_id=None)
    )


def _give_back(engine: Engine, release_id: int, message: str) -> None:
    """A release that failed: its claimed rows without an outcome are open again."""
    with engine.connect() as connection, _writing(connection):
        _reopen_unsettled(connection, release_id)
        connection.execute(
            update(quarantine_releases)
            .where(quarantine_releases.c.release_id == release_id)
            .values(status="failed", finished_at=datetime.now(UTC), message=message[:2000])
        )


def _record(raw: str) -> dict | None:
    """The feed row a quarantine row kept, or None when it never was one (a malformed line)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) == {"line"}:
        return None
    return {c: value.get(c) for c in FEED_COLUMNS}


def _in_point_zone(record: dict, zones: dict[str, str]) -> dict:
    """``record`` with a time written without an offset read in its point's zone."""
    text = record.get("occurred_at")
    zone = zones.get(str(record.get("point_id")))
    if not isinstance(text, str) or zone is None:
        return record
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return record  # the suite says what is wrong with it
    if moment.tzinfo is not None:
        return record
    return {**record, "occurred_at": moment.replace(tzinfo=ZoneInfo(zone)).isoformat()}


def _readmit(
    engine: Engine,
    release_id: int,
    claimed: list,
    now: datetime,
    naive_times_in_point_zone: bool,
    future_tolerance: timedelta,
    earliest: datetime,
) -> ReleaseResult:
    result = ReleaseResult(release_id, selected=len(claimed))
    zones = (
        {p: row["timezone"] for p, row in known_points(engine).items()}
        if naive_times_in_point_zone
        else {}
    )
    by_source: dict[str, list[tuple[int, dict]]] = {}
    skipped = []
    for row in claimed:
        record = _record(row.raw) if row.kind != "malformed" else None
        if record is None:
            skipped.append(row.quarantine_id)
            continue
        if naive_times_in_point_zone:
            record = _in_point_zone(record, zones)
        by_source.setdefault(row.source, []).append((row.quarantine_id, record))
    outcomes: list[dict] = []
    for source, rows in sorted(by_source.items()):
        # The rows' first source stays theirs: the per-source freshness and the ops page's
        # "latest batch per source" see the re-admitted sales where they came from.
        batch = ingest_rows(
            engine,
            [record for _, record in rows],
            source=source,
            source_ref=f"quarantine release {release_id}",
            now=now,
            future_tolerance=future_tolerance,
            earliest=earliest,
        )
        result.batch_ids.append(batch.batch_id)
        outcomes += _outcomes(engine, batch, rows)
        result.stored += batch.accepted
        result.duplicates += batch.duplicates
        result.still_bad += batch.quarantined
    result.skipped = len(skipped)
    _settle(engine, release_id, outcomes, skipped, result)
    return result


def _outcomes(engine: Engine, batch, rows: list[tuple[int, dict]]) -> list[dict]:
    """What became of each released row in ``batch`` (rows in the order they were sent)."""
    q, t = quarantine.c, transactions.c
    with engine.connect() as connection:
        again = dict(
            connection.execute(
                select(q.line_no, q.quarantine_id).where(q.batch_id == batch.batch_id)
            ).all()
        )
        # The keys as ingest saw them: the frame's own text of each value.
        keys = frame_chunk(
            pd.DataFrame([r for _, r in rows], columns=list(FEED_COLUMNS), dtype=object),
            source_ref="release",
        ).frame[["point_id", "txn_id"]]
        stored_here = set()
        points_ = sorted({str(p) for p in keys["point_id"] if isinstance(p, str)})
        for part in _parts(points_):
            stored_here |= set(
                connection.execute(
                    select(t.point_id, t.txn_id).where(
                        t.batch_id == batch.batch_id, t.point_id.in_(part)
                    )
                ).all()
            )
    out, taken = [], set()
    for position, (quarantine_id, _) in enumerate(rows, start=1):
        if position in again:
            out.append(
                {"quarantine_id": quarantine_id, "release_outcome": "requarantined",
                 "release_batch_id": batch.batch_id, "requarantined_as": again[position]}
            )  # fmt: skip
            continue
        key = (keys.at[position - 1, "point_id"], keys.at[position - 1, "txn_id"])
        # The first row of a key the batch stored is the stored one; repeats are duplicates.
        outcome = "stored" if key in stored_here and key not in taken else "duplicate"
        taken.add(key)
        out.append(
            {"quarantine_id": quarantine_id, "release_outcome": outcome,
             "release_batch_id": batch.batch_id, "requarantined_as": None}
        )  # fmt: skip
    stored = sum(o["release_outcome"] == "stored" for o in out)
    if stored != batch.accepted or len(again) != batch.quarantined:
        raise RuntimeError(
            f"release batch {batch.batch_id}: {stored} rows found stored and {len(again)} "
            f"quarantined again, but the batch counted {batch.accepted} and {batch.quarantined}"
        )
    return out


def _settle(
    engine: Engine, release_id: int, outcomes: list[dict], skipped: list[int], result
) -> None:
    """Write each row's outcome and the release's counts, in one transaction."""
    q = quarantine.c
    with engine.connect() as connection, _writing(connection):
        if outcomes:
            connection.execute(
                update(quarantine)
                .where(q.quarantine_id == bindparam("qid"))
                .values(
                    release_outcome=bindparam("outcome"),
                    release_batch_id=bindparam("batch"),
                    requarantined_as=bindparam("again"),
                ),
                [
                    {
                        "qid": o["quarantine_id"],
                        "outcome": o["release_outcome"],
                        "batch": o["release_batch_id"],
                        "again": o["requarantined_as"],
                    }
                    for o in outcomes
                ],  # fmt: skip
            )
        if skipped:  # not rows: open again, for a person to read (and export)
            _reopen_unsettled(connection, release_id)
        connection.execute(
            update(quarantine_releases)
            .where(quarantine_releases.c.release_id == release_id)
            .values(
                status="done",
                finished_at=datetime.now(UTC),
                stored=result.stored,
                duplicates=result.duplicates,
                still_bad=result.still_bad,
                skipped=result.skipped,
            )
        )


def recent_releases(engine: Engine, *, limit: int = 20) -> list:
    """The newest releases first."""
    with engine.connect() as connection:
        return connection.execute(
            select(quarantine_releases)
            .order_by(quarantine_releases.c.release_id.desc())
            .limit(limit)
        ).all()


def get_release(connection: Connection, release_id: int):
    row = connection.execute(
        select(quarantine_releases).where(quarantine_releases.c.release_id == release_id)
    ).first()
    if row is None:
        raise NotFoundError.said("release %(id)s does not exist", id=release_id)
    return row


__all__ = [
    "EXPORT_COLUMNS",
    "MAX_RELEASE_ROWS",
    "OUTCOMES",
    "STATES",
    "QuarantineFilter",
    "QuarantinePage",
    "ReleaseResult",
    "export_quarantine_csv",
    "list_quarantine",
    "recent_releases",
    "release_quarantine",
    "row_state",
]
