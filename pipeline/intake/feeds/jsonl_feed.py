"""JSON Lines feeds: one object per line; a non-scalar value or a broken line is a malformed row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError

if TYPE_CHECKING:
    from pipeline.intake.feeds.reader import FeedReader
from pipeline.intake.feeds.lines import (
    FEED_COLUMNS,
    REQUIRED_COLUMNS,
    FeedChunk,
    MalformedLine,
    _Lines,
    _missing_columns_error,
    _show_line,
    normal_column,
)

# --- JSON Lines ---------------------------------------------------------------------------


def _as_text(value):
    """A JSON/frame value as the text it was; missing as NaN; objects and arrays as JSON."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        text = str(value)
        return text if text != "" else np.nan
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _nonscalar_field(record: dict) -> str | None:
    for column in FEED_COLUMNS:
        if isinstance(record.get(column), (dict, list)):
            return column
    return None


def _read_jsonl(reader: FeedReader, lines: _Lines) -> Iterator[FeedChunk]:
    """JSON Lines: one object per line. A line that is not a JSON object is a malformed line."""
    path = reader.path
    records: list[dict] = []
    raws: list[str] = []
    line_nos: list[int] = []
    nonscalar: list[str | None] = []
    malformed: list[MalformedLine] = []
    seen_columns: set[str] = set()
    checked = False
    first_record = True
    for line_no, raw in lines.iter_lines():
        if not raw.strip():
            reader.blank_lines += 1
            continue
        record = None
        reason = None
        if b"\x00" in raw:
            reason = "the line holds a NUL byte"
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"the line is not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r} at column {exc.start + 1})"
            else:
                try:
                    record = json.loads(text)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    record = None
                    reason = "the line is not a JSON object"
        if first_record:
            first_record = False
            if record is None:
                raise UnusableInputError(
                    f"feed {path}: line {line_no} is not a JSON object; not a JSON Lines feed"
                )
        if record is None:
            malformed.append(MalformedLine(line_no, _show_line(raw), reason))
        else:
            record = {normal_column(k): v for k, v in record.items()}
            seen_columns.update(record)
            records.append({c: _as_text(record.get(c)) for c in FEED_COLUMNS})
            raws.append(json.dumps(record, ensure_ascii=False))
            nonscalar.append(_nonscalar_field(record))
            line_nos.append(line_no)
        if len(records) + len(malformed) >= reader.chunk_rows:
            if not checked:
                _check_json_columns(path, seen_columns)
                checked = True
            yield _json_chunk(records, raws, line_nos, nonscalar, malformed)
            records, raws, line_nos, nonscalar, malformed = [], [], [], [], []
    if not checked:
        if not records:
            raise UnusableInputError(f"feed {path}: the file has no rows")
        _check_json_columns(path, seen_columns)
    if lines.source.cut and lines.last_unterminated:
        _cut_json_tail(lines.source.cut, records, raws, line_nos, nonscalar, malformed, lines)
    if records or malformed:
        yield _json_chunk(records, raws, line_nos, nonscalar, malformed)


def _cut_json_tail(why, records, raws, line_nos, nonscalar, malformed, lines) -> None:
    """A truncated archive's last line is cut off: a malformed line, never a row."""
    last = lines.next_line - 1
    reason = f"the file ends inside this line: {why}"
    if line_nos and line_nos[-1] == last:
        records.pop(), nonscalar.pop(), line_nos.pop()
        malformed.append(MalformedLine(last, raws.pop(), reason))
    elif malformed and malformed[-1].line_no == last:
        m = malformed[-1]
        malformed[-1] = MalformedLine(m.line_no, m.text, f"{m.reason}; {reason}")


def _check_json_columns(path: Path, seen: set[str]) -> None:
    # A feed whose records never carry a required key is the wrong kind of file; a record that
    # lacks one now and then is a bad row, quarantined later.
    if any(c not in seen for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(path, sorted(seen))


def _json_chunk(records, raws, lines, nonscalar, malformed) -> FeedChunk:
    frame = pd.DataFrame.from_records(records, columns=list(FEED_COLUMNS))
    frame = frame.astype(object)
    return FeedChunk(
        frame=frame,
        line_no=np.asarray(lines, dtype=np.int64),
        raw=raws,
        malformed=malformed,
        nonscalar=np.asarray(nonscalar, dtype=object),
        lines=len(records) + len(malformed),
    )
