"""Property: whatever mix of good rows and bad lines a feed holds, at any position and chunk
size, the stored rows are exactly the good rows and the quarantine holds every bad line, on
SQLite and PostgreSQL (issue 14).

Bounded for ``make test``; ``make test-ingest-property`` runs it bigger through
EINCOME_PROPERTY_EXAMPLES and EINCOME_PROPERTY_LINES.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

hypothesis = pytest.importorskip("hypothesis")  # the dev extra
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pipeline.intake.ingest import ingest_file, quarantine_reasons  # noqa: E402
from pipeline.store.schema import transactions  # noqa: E402
from tests.helpers.registry import register  # noqa: E402

EXAMPLES = int(os.environ.get("EINCOME_PROPERTY_EXAMPLES", "6"))
MAX_LINES = int(os.environ.get("EINCOME_PROPERTY_LINES", "40"))
NOW = datetime(2026, 3, 2, tzinfo=UTC)
CSV_HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"

GOOD = "good"
MULTILINE = "good-multiline"  # a quoted operator_id holding a line break: one record, 2 lines
RESEND = "resend"  # an exact copy of an earlier good row: a duplicate
CONFLICT = "conflict"  # an earlier good row's key with another amount: quarantined
BLANK = "blank"
CSV_BAD = (
    "extra-field",
    "missing-field",
    "unclosed-quote",
    "latin1",
    "nul",
    "negative",
    "thousands",
    "long-id",
    "unknown-point",
    "no-offset",
    "epoch",
)
JSON_BAD = ("not-json", "nonscalar", "latin1", "nul-escape", "negative", "thousands", "epoch")
KINDS_CSV = (GOOD, GOOD, GOOD, MULTILINE, RESEND, CONFLICT, BLANK, *CSV_BAD)
KINDS_JSON = (GOOD, GOOD, GOOD, RESEND, CONFLICT, BLANK, *JSON_BAD)


@dataclass
class Feed:
    body: bytes = b""
    line: int = 0  # physical lines written so far
    good: dict = field(default_factory=dict)  # txn_id -> its line
    bad_lines: set = field(default_factory=set)
    duplicates: int = 0


def _values(txn_id: str, i: int, **overrides) -> dict:
    values = {
        "txn_id": txn_id,
        "point_id": "P1",
        "occurred_at": f"2026-03-01T10:{i % 60:02d}:00+07:00",
        "amount": str(1000 + i),
        "payment_method": "cash",
        "status": "paid",
        "operator_id": f"op{i % 3}",
    }
    values.update(overrides)
    return values


def _csv(values: dict) -> bytes:
    return (",".join(values.values()) + "\n").encode()


def _json(values: dict) -> bytes:
    return (json.dumps(values) + "\n").encode()


def build(kinds: list[str], prefix: str, fmt: str, crlf: bool) -> Feed:
    feed = Feed()
    encode = _csv if fmt == "csv" else _json
    if fmt == "csv":
        feed.body, feed.line = CSV_HEADER.encode(), 1
    earlier: list[dict] = []
    for i, kind in enumerate(kinds):
        txn_id = f"{prefix}-{i}"
        values = _values(txn_id, i)
        lines = 1
        if kind in (RESEND, CONFLICT) and not earlier:
            kind = GOOD
        if kind == GOOD:
            text = encode(values)
            feed.good[txn_id] = feed.line + 1
            earlier.append(values)
        elif kind == MULTILINE:
            values["operator_id"] = '"op\nsecond line"'
            text, lines = encode(values), 2
            feed.good[txn_id] = feed.line + 1
        elif kind == RESEND:
            text = encode(earlier[i % len(earlier)])
            feed.duplicates += 1
        elif kind == CONFLICT:
            text = encode({**earlier[i % len(earlier)], "amount": "999999"})
            feed.bad_lines.add(feed.line + 1)
        elif kind == BLANK:
            text = b"\n"
        else:
            text = _bad(kind, values, fmt)
            feed.bad_lines.add(feed.line + 1)
        if crlf:
            text = text.replace(b"\n", b"\r\n")
        feed.body += text
        feed.line += lines
    return feed


def _bad(kind: str, values: dict, fmt: str) -> bytes:
    if kind == "extra-field":
        return _csv({**values, "surplus": "x"})
    if kind == "missing-field":
        return _csv({k: v for k, v in values.items() if k != "operator_id"})
    if kind == "unclosed-quote":
        return _csv({**values, "occurred_at": '"' + values["occurred_at"]})
    if kind == "latin1":
        encoded = (_csv if fmt == "csv" else _json)(values)
        return encoded.replace(b"op", b"caf\xe9", 1)
    if kind == "nul":
        return _csv(values).replace(b"cash", b"ca\x00sh")
    if kind == "nul-escape":
        return _json({**values, "operator_id": "a\x00b"})
    if kind == "not-json":
        return b"{this is not json\n"
    if kind == "nonscalar":
        return _json({**values, "txn_id": {"id": values["txn_id"]}})
    overrides = {
        "negative": {"amount": "-5"},
        "thousands": {"amount": "1.000"},
        "long-id": {"txn_id": values["txn_id"] + "x" * 130},
        "unknown-point": {"point_id": "P404"},
        "no-offset": {"occurred_at": "2026-03-01T10:00:00"},
        "epoch": {"occurred_at": "1970-01-01T00:00:00Z"},
    }[kind]
    return (_csv if fmt == "csv" else _json)({**values, **overrides})


@st.composite
def feeds(draw):
    fmt = draw(st.sampled_from(["csv", "jsonl"]))
    kinds = draw(
        st.lists(st.sampled_from(KINDS_CSV if fmt == "csv" else KINDS_JSON), max_size=MAX_LINES)
    )
    # JSON Lines: the first line must be an object, or the file is not a feed at all.
    kinds = [GOOD, *kinds]
    crlf = draw(st.booleans())
    chunk_rows = draw(st.sampled_from([4, 11, 1_000]))
    return fmt, kinds, crlf, chunk_rows


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("EINCOME_PROPERTY_RANDOM") != "1",
)
@given(case=feeds())
def test_stored_rows_are_the_good_rows_and_every_bad_line_is_quarantined(engine, tmp_path, case):
    fmt, kinds, crlf, chunk_rows = case
    register(engine, "P1")
    prefix = uuid.uuid4().hex[:8]  # one database for every example: keys never meet
    feed = build(kinds, prefix, fmt, crlf)
    path = tmp_path / f"{prefix}.{fmt}"
    path.write_bytes(feed.body)

    result = ingest_file(engine, path, now=NOW, chunk_rows=chunk_rows)

    with engine.connect() as connection:
        stored = set(
            connection.execute(
                select(transactions.c.txn_id).where(transactions.c.txn_id.like(f"{prefix}-%"))
            ).scalars()
        )
    assert stored == set(feed.good)
    quarantined = quarantine_reasons(engine, result.batch_id)
    assert {q["line_no"] for q in quarantined} == feed.bad_lines
    assert len(quarantined) == len(feed.bad_lines)
    assert result.duplicates == feed.duplicates
    assert result.accepted + result.quarantined + result.duplicates == result.rows_read
    assert result.lines_read == feed.line + (0 if feed.body.endswith(b"\n") else 1)
