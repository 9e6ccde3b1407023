"""One chunk of a batch: validated, deduplicated, keyed, and stored or quarantined."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import insert

from pipeline.intake.aggregate import Encoder
from pipeline.intake.feeds import FeedChunk
from pipeline.intake.ingest.writer import CONTENT_FIELDS, STAGE_COLUMNS, _TransactionWriter
from pipeline.intake.validate import validate_chunk
from pipeline.store.bulk import BulkRows, copy_rows, format_rows, point_time_order, uses_arrow
from pipeline.store.schema import quarantine


@dataclass
class _Counts:
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    lines_read: int | None = None


# --- one chunk ----------------------------------------------------------------------------


@dataclass
class _PreparedChunk:
    """One chunk after validation and in-chunk dedupe: what is left to store, and why not the rest."""

    rows_read: int
    rows: pd.DataFrame  # candidates: valid, first of their key in the chunk
    quarantine_rows: list[dict]
    duplicates: int
    chunk: FeedChunk
    seconds: dict[str, float]  # read, validate and format time, spent on the worker thread
    formatted: BulkRows | None = None  # rows as the bulk append writes them


def _prepare_chunk(
    batch_id: int,
    chunk: FeedChunk,
    known: set[str],
    now: datetime,
    future_tolerance: timedelta,
    earliest: datetime,
) -> _PreparedChunk:
    """Validate one chunk and dedupe it within itself; touches no database."""
    started = time.perf_counter()
    frame = chunk.frame
    malformed_rows = _malformed_rows(batch_id, chunk)
    if not len(frame):
        return _PreparedChunk(chunk.records, _no_rows(), malformed_rows, 0, chunk, {})
    checked = validate_chunk(
        frame,
        known_point_ids=known,
        now=now,
        future_tolerance=future_tolerance,
        earliest=earliest,
        nonscalar=chunk.nonscalar,
    )
    quarantine_rows = malformed_rows + [
        _quarantine_row(batch_id, chunk, position, "; ".join(reasons), "invalid")
        for position, reasons in sorted(checked.reasons.items())
    ]

    rows = _valid_rows(frame, checked)

    # The same key twice in one chunk: the first is a candidate, the rest are duplicates of it
    # (or conflicts, when their content differs).
    rows, duplicates = _drop_repeats(rows, batch_id, chunk, quarantine_rows)
    # Near key order: the rows then go into the primary-key B-tree at neighbouring places,
    # about 1.3x faster to write than feed (time) order (a point's txn_ids mostly grow with time).
    order = point_time_order(rows["point_id"], rows["occurred_at"].to_numpy())
    rows = rows.iloc[order].reset_index(drop=True)
    return _PreparedChunk(
        rows_read=chunk.records,
        rows=rows,
        quarantine_rows=quarantine_rows,
        duplicates=duplicates,
        chunk=chunk,
        seconds={"validate": time.perf_counter() - started},
    )


def _malformed_rows(batch_id: int, chunk: FeedChunk) -> list[dict]:
    """Quarantine rows for the lines the reader could not make a record of, raw text kept."""
    return [
        {
            "batch_id": batch_id,
            "line_no": line.line_no,
            "point_id": None,
            "txn_id": None,
            "raw": _safe_text(json.dumps({"line": line.text}, ensure_ascii=False)),
            "reasons": _safe_text(line.reason),
            "kind": "malformed",
        }
        for line in chunk.malformed
    ]


def _valid_rows(frame: pd.DataFrame, checked) -> pd.DataFrame:
    """The rows that passed validation, typed for storage (times naive UTC, amounts int64)."""
    ok = ~checked.failed
    occurred_us = checked.occurred_at.dt.as_unit("us").array.asi8[ok]
    return pd.DataFrame(
        {
            "pos": np.flatnonzero(ok),
            "point_id": frame["point_id"].to_numpy(dtype=object)[ok],
            "txn_id": frame["txn_id"].to_numpy(dtype=object)[ok],
            "occurred_at": occurred_us.view("datetime64[us]"),  # naive UTC
            "amount": checked.amount[ok].astype(np.int64),
            "payment_method": frame["payment_method"].to_numpy(dtype=object)[ok],
            "status": frame["status"].to_numpy(dtype=object)[ok],
            "operator_id": _optional(frame["operator_id"])[ok],
            "payer_ref": _optional(frame["payer_ref"])[ok],
        }
    )


def _drop_repeats(
    rows: pd.DataFrame, batch_id: int, chunk: FeedChunk, quarantine_rows: list[dict]
) -> tuple[pd.DataFrame, int]:
    """The same key twice in one chunk: the first is a candidate, the rest are duplicates of it
    (or conflicts, quarantined, when their content differs). Returns the rows left and the
    duplicate count."""
    repeated = rows.duplicated(["point_id", "txn_id"], keep="first").to_numpy()
    if not repeated.any():
        return rows, 0
    # Compare each repeat with its first occurrence, vectorised: a file sent twice in one
    # upload is all repeats. One left join of the repeats onto the first occurrences (many to
    # one): each repeat gets exactly its first row, however many times the key comes back.
    later = rows[repeated]
    first = later[["point_id", "txn_id"]].merge(
        rows[~repeated], on=["point_id", "txn_id"], how="left", validate="many_to_one"
    )
    identical = np.ones(len(later), dtype=bool)
    for name in CONTENT_FIELDS:
        a, b = later[name].to_numpy(dtype=object), first[name].to_numpy(dtype=object)
        identical &= (a == b) | (pd.isna(a) & pd.isna(b))
    for i in np.flatnonzero(~identical):
        row, earlier = later.iloc[i], first.iloc[i]
        reason = _conflict_reason(row, _differing(earlier, row.to_dict()), "earlier in this feed")
        quarantine_rows.append(_quarantine_row(batch_id, chunk, int(row.pos), reason, "conflict"))
    return rows[~repeated], int(identical.sum())


def _no_rows() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name in STAGE_COLUMNS})


def _store_chunk(
    encoder: Encoder, writer: _TransactionWriter, prepared: _PreparedChunk, counts: _Counts
) -> pd.DataFrame:
    """Store one prepared chunk; returns its stored rows encoded for aggregation.

    New keys - every row of a fresh feed - go in with one bulk append. Only when some key is
    already stored (a resend, an overlapping export) is the chunk staged and compared with the
    stored rows, to tell identical resends (duplicates) from changed ones (conflicts).
    """
    rows = prepared.rows
    quarantine_rows = list(prepared.quarantine_rows)
    duplicates = prepared.duplicates
    if len(rows) and not writer.append(prepared.formatted, rows):
        writer.load(rows)
        same, conflicts = writer.classify_against_stored()
        duplicates += len(same)
        stored_keys = same | {pos for pos, _ in conflicts}
        if conflicts:
            by_pos = rows.set_index("pos", drop=False)
            for pos, stored in conflicts:
                row = by_pos.loc[pos]
                reason = _conflict_reason(row, _differing(stored, row.to_dict()), "already stored")
                quarantine_rows.append(
                    _quarantine_row(writer.batch_id, prepared.chunk, pos, reason, "conflict")
                )
        if stored_keys:
            rows = rows[~rows["pos"].isin(stored_keys)]
        writer.insert_unstored(expected=len(rows))
    if quarantine_rows:
        _write_quarantine(writer.connection, quarantine_rows)

    counts.accepted += len(rows)
    counts.quarantined += len(quarantine_rows)
    counts.duplicates += duplicates
    return encoder.encode(
        rows["point_id"].to_numpy(dtype=object),
        rows["occurred_at"].to_numpy().astype(np.int64),
        rows["amount"].to_numpy(),
        rows["status"].to_numpy(dtype=object),
        rows["payment_method"].to_numpy(dtype=object),
        rows["operator_id"].to_numpy(dtype=object),
    )


# Fewer quarantine rows than this go in with a plain insert: a stage costs a round trip or two
# (and on SQLite one of a transaction's few stage slots).
_QUARANTINE_BULK_ROWS = 1000
_QUARANTINE_COLUMNS = ("batch_id", "line_no", "point_id", "txn_id", "raw", "reasons", "kind")


def _write_quarantine(connection, rows: list[dict]) -> None:
    """A chunk's quarantine rows: many by the bulk path (Arrow + ADBC where it is taken)."""
    if len(rows) < _QUARANTINE_BULK_ROWS or not uses_arrow(connection):
        connection.execute(insert(quarantine), rows)
        return
    columns = {name: [row[name] for row in rows] for name in _QUARANTINE_COLUMNS}
    copy_rows(
        connection,
        quarantine.name,
        format_rows(connection.dialect.name, columns, arrow=True),
        keep_slots=2,
    )


def _optional(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=object, na_value=None)


def _differing(stored, incoming: dict) -> list[tuple[str, object, object]]:
    """(field, stored, incoming) for each content field that differs."""
    out = []
    for name in CONTENT_FIELDS:
        a, b = _normal(name, stored[name]), _normal(name, incoming[name])
        if a != b:
            out.append((name, a, b))
    return out


def _normal(field: str, value):
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if field == "occurred_at":
        return (
            pd.Timestamp(value).tz_convert(UTC)
            if pd.Timestamp(value).tzinfo
            else pd.Timestamp(value, tz=UTC)
        )
    if field == "amount":
        return int(value)
    return str(value)


def _show(field: str, value) -> str:
    if value is None:
        return "empty"
    if field == "occurred_at":
        return value.isoformat()
    return str(value)


def _conflict_reason(row, differing, where: str) -> str:
    parts = ", ".join(f"{f} {_show(f, new)} (stored {_show(f, old)})" for f, old, new in differing)
    return (
        f'txn_id "{row.txn_id}" at point {row.point_id} was {where} with different content: {parts}'
    )


def _quarantine_row(
    batch_id: int, chunk: FeedChunk, position: int, reasons: str, kind: str
) -> dict:
    frame = chunk.frame
    point_id, txn_id = frame.at[position, "point_id"], frame.at[position, "txn_id"]
    return {
        "batch_id": batch_id,
        "line_no": int(chunk.line_no[position]),
        "point_id": None if pd.isna(point_id) else _safe_text(str(point_id))[:64],
        "txn_id": None if pd.isna(txn_id) else _safe_text(str(txn_id))[:128],
        "raw": _safe_text(chunk.raw_row(position)),
        "reasons": _safe_text(reasons),
        "kind": kind,
    }


def _safe_text(value: str) -> str:
    """Text every database stores as it is: NUL (PostgreSQL refuses it) and lone surrogates
    (not encodable) written as escapes. Only quarantine text needs this: stored transactions
    never hold either (the suite quarantines such rows)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return value
