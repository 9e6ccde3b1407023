"""A push request's body: a JSON array or JSON Lines of feed rows, within the limits.

The rows follow the feed contract (README "Feed format"; the same columns as a JSON Lines feed
file); their values are judged later by the same suite as files. Here only the shape is
checked, and a body that is not usable as a whole is refused with the status a client can act on
(400 not JSON, 413 too big, 415 another media type), never stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pipeline.core.errors import UnusableInputError
from pipeline.intake.feeds import FEED_COLUMNS, normal_column

JSON_TYPES = ("application/json",)
JSON_LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")


@dataclass(frozen=True)
class PushLimits:
    """What one request may carry, and how often one key may send (per server worker)."""

    max_body_bytes: int = 1_048_576
    max_rows: int = 1_000
    rate_per_second: float = 50.0
    burst: int = 100
    answer_wait_seconds: float = 10.0


class PushRefused(UnusableInputError):
    """A push request refused as a whole. ``status`` is the HTTP status the API answers: the
    push API's contract with devices, so it lives with the rule that decides it."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_rows(body: bytes, content_type: str | None, limits: PushLimits) -> list[dict]:
    """The body's rows as dicts of feed columns (names normalised like a feed's keys)."""
    if len(body) > limits.max_body_bytes:
        raise PushRefused(
            413, f"the body is {len(body):,} bytes; at most {limits.max_body_bytes:,} are taken"
        )
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in JSON_TYPES + JSON_LINES_TYPES:
        raise PushRefused(
            415,
            f"Content-Type {media or '(none)'!r} is not taken: send application/json (an array "
            "of rows) or application/x-ndjson (one row per line)",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PushRefused(400, f"the body is not UTF-8 text (byte {exc.start + 1})") from None
    records = _json_array(text) if media in JSON_TYPES else _json_lines(text)
    if not records:
        raise PushRefused(400, "the body holds no rows")
    if len(records) > limits.max_rows:
        raise PushRefused(
            413,
            f"the body holds {len(records):,} rows; at most {limits.max_rows:,} per request "
            "(split it)",
        )
    return [_feed_row(record) for record in records]


def _json_array(text: str) -> list:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise PushRefused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(value, list):
        raise PushRefused(400, "the body must be a JSON array of rows (objects)")
    for number, record in enumerate(value, start=1):
        if not isinstance(record, dict):
            raise PushRefused(400, f"row {number} is not a JSON object")
    return value


def _json_lines(text: str) -> list:
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise PushRefused(400, f"line {line_no} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise PushRefused(400, f"line {line_no} is not a JSON object")
        records.append(record)
    return records


def _feed_row(record: dict) -> dict:
    # Every feed column present (None when missing): a row without an amount is one bad row,
    # quarantined with its reason, not a request without the column.
    named = {normal_column(k): v for k, v in record.items()}
    return {column: named.get(column) for column in FEED_COLUMNS}
