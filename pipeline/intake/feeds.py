"""Reading transaction feeds: CSV with a header or JSON Lines, optionally gzipped, in chunks.

Every value is read as the text it was (never converted to a number or time); turning strings into times and amounts is the
validator's job, so a bad value becomes a quarantined row with a reason instead of a crash. A file
that is not a feed at all (binary, empty, undecodable, missing columns) raises
``UnusableInputError`` naming the file: the whole file is rejected.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError

REQUIRED_COLUMNS = ("txn_id", "point_id", "occurred_at", "amount", "payment_method", "status")
OPTIONAL_COLUMNS = ("operator_id", "payer_ref")
FEED_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 64 * 1024


@dataclass
class FeedChunk:
    """A slice of a feed: ``frame`` holds FEED_COLUMNS as strings (missing values are NaN).

    ``line_no`` is the 1-based data line of each row (header excluded). ``raw`` holds each row
    as received, as JSON text, when the reader has it cheaply (JSON Lines); otherwise it is
    rebuilt from ``frame`` for the few rows that need it (quarantine).
    """

    frame: pd.DataFrame
    line_no: np.ndarray
    raw: list[str] | None = None
    extra_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    def raw_row(self, position: int) -> str:
        """The row at ``position`` as received, as JSON."""
        if self.raw is not None:
            return self.raw[position]
        row = self.frame.iloc[position]
        values = {c: _plain(row[c]) for c in (*FEED_COLUMNS, *self.extra_columns) if c in row.index}
        return json.dumps(values, ensure_ascii=False)


def _plain(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _open_bytes(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else path.open("rb")


def _head(path: Path, gz: bool) -> bytes:
    """The first bytes of the (decompressed) file; a broken gzip is an unusable file."""
    try:
        with _open_bytes(path, gz) as handle:
            return handle.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnusableInputError(f"feed {path}: cannot read it ({exc})") from None


def _check_text(path: Path, head: bytes) -> str:
    """Refuse binary and non-UTF-8 files before pandas sees them; returns the decoded head."""
    if not head.strip():
        raise UnusableInputError(f"feed {path}: the file is empty")
    if b"\x00" in head:
        raise UnusableInputError(f"feed {path}: binary data, not a CSV or JSON Lines feed")
    try:
        # final=False: the sniffed block may end inside a multi-byte character.
        return codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise UnusableInputError(
            f"feed {path}: not UTF-8 text (byte {exc.start}: {head[exc.start : exc.start + 1]!r})"
        ) from None


def feed_format(path: Path, text_head: str) -> str:
    """'jsonl' or 'csv', from the suffix, else from the first character."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in JSON_SUFFIXES:
        return "jsonl"
    if suffixes and suffixes[-1] in (".csv", ".txt"):
        return "csv"
    return "jsonl" if text_head.lstrip().startswith("{") else "csv"


def _missing_columns_error(path: Path, found) -> UnusableInputError:
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    shown = ", ".join(str(c) for c in list(found)[:10]) or "none"
    return UnusableInputError(
        f"feed {path}: missing column(s) {', '.join(missing)} (found: {shown}); "
        f"a feed needs {', '.join(REQUIRED_COLUMNS)}[, {', '.join(OPTIONAL_COLUMNS)}]"
    )


def read_feed(path: Path, *, chunk_rows: int = 200_000) -> Iterator[FeedChunk]:
    """Yield the feed at ``path`` in chunks of at most ``chunk_rows`` rows.

    Raises UnusableInputError (naming the file) when the file is not a feed at all; this can
    happen mid-file (e.g. undecodable bytes at line 3 million), so callers must treat the
    file as one unit.
    """
    path = Path(path)
    if not path.is_file():
        raise UnusableInputError(f"feed {path}: no such file")
    gz = _is_gzip(path)
    text_head = _check_text(path, _head(path, gz))
    if feed_format(path, text_head) == "jsonl":
        yield from _read_jsonl(path, gz, chunk_rows)
    else:
        yield from _read_csv(path, gz, chunk_rows)


def _read_csv(path: Path, gz: bool, chunk_rows: int) -> Iterator[FeedChunk]:
    options = dict(
        # object, not str: every value stays the text it was, and pandas 3's python-backed
        # string arrays are several times slower to test for missing values than object arrays.
        dtype=object,
        # Only an empty field is missing: "NA" or "null" may be a real txn_id or operator code.
        keep_default_na=False,
        na_values=[""],
        compression="gzip" if gz else None,
        encoding="utf-8-sig",
    )
    try:
        header = pd.read_csv(path, nrows=0, **options).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UnusableInputError(f"feed {path}: not a CSV feed ({exc})") from None
    header = [str(c).strip() for c in header]
    if any(c not in header for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(path, header)
    extra = tuple(c for c in header if c not in FEED_COLUMNS)
    first_line = 1
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows, header=0, names=header, **options)
        for frame in reader:
            count = len(frame)
            for column in OPTIONAL_COLUMNS:
                if column not in frame.columns:
                    frame[column] = np.nan
            frame = frame.reset_index(drop=True)
            line_no = np.arange(first_line, first_line + count, dtype=np.int64)
            first_line += count
            yield FeedChunk(frame=frame, line_no=line_no, extra_columns=extra)
    except pd.errors.ParserError as exc:
        raise UnusableInputError(
            f"feed {path}: malformed CSV near data line {first_line}: {exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise UnusableInputError(
            f"feed {path}: not UTF-8 text after data line {first_line} ({exc.reason})"
        ) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise UnusableInputError(
            f"feed {path}: cannot read it after data line {first_line} ({exc})"
        ) from None


def _as_text(value):
    if value is None:
        return np.nan
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        text = str(value)
        return text if text != "" else np.nan
    return json.dumps(value)


def _read_jsonl(path: Path, gz: bool, chunk_rows: int) -> Iterator[FeedChunk]:
    """JSON Lines: one object per line. A line that is not a JSON object is kept as a row whose
    fields are all missing, so it is quarantined (with its text) rather than silently dropped."""
    handle = io.TextIOWrapper(_open_bytes(path, gz), encoding="utf-8-sig", newline="")
    records: list[dict] = []
    raws: list[str] = []
    lines: list[int] = []
    seen_columns: set[str] = set()
    checked = False
    line_no = 0
    try:
        with handle:
            for text in handle:
                if not text.strip():
                    continue
                line_no += 1
                try:
                    record = json.loads(text)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    if not checked and line_no == 1:
                        raise UnusableInputError(
                            f"feed {path}: line 1 is not a JSON object; not a JSON Lines feed"
                        )
                    records.append({})
                    raws.append(json.dumps({"line": text.rstrip("\r\n")}, ensure_ascii=False))
                else:
                    seen_columns.update(record)
                    records.append({c: _as_text(record.get(c)) for c in FEED_COLUMNS})
                    raws.append(json.dumps(record, ensure_ascii=False))
                lines.append(line_no)
                if len(records) >= chunk_rows:
                    if not checked:
                        _check_json_columns(path, seen_columns)
                        checked = True
                    yield _json_chunk(records, raws, lines)
                    records, raws, lines = [], [], []
    except UnicodeDecodeError as exc:
        raise UnusableInputError(
            f"feed {path}: not UTF-8 text after line {line_no} ({exc.reason})"
        ) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise UnusableInputError(
            f"feed {path}: cannot read it after line {line_no} ({exc})"
        ) from None
    if not checked:
        if not records:
            raise UnusableInputError(f"feed {path}: the file has no rows")
        _check_json_columns(path, seen_columns)
    if records:
        yield _json_chunk(records, raws, lines)


def _check_json_columns(path: Path, seen: set[str]) -> None:
    # A feed whose records never carry a required key is the wrong kind of file; a record that
    # lacks one now and then is a bad row, quarantined later.
    if any(c not in seen for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(path, sorted(seen))


def _json_chunk(records: list[dict], raws: list[str], lines: list[int]) -> FeedChunk:
    frame = pd.DataFrame.from_records(records, columns=list(FEED_COLUMNS))
    return FeedChunk(frame=frame, line_no=np.asarray(lines, dtype=np.int64), raw=raws)


def frame_chunk(frame: pd.DataFrame, *, source_ref: str) -> FeedChunk:
    """A caller's frame (one API page, one SQL slice) as a feed chunk, values made strings."""
    columns = [str(c) for c in frame.columns]
    if any(c not in columns for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(Path(source_ref), columns)
    out = pd.DataFrame(index=range(len(frame)))
    for column in FEED_COLUMNS:
        if column not in frame.columns:
            out[column] = np.nan
            continue
        values = frame[column].reset_index(drop=True)
        if pd.api.types.is_datetime64_any_dtype(values):
            if values.dt.tz is None:
                raise UnusableInputError(
                    f"{source_ref}: column {column} holds naive times; give them a UTC offset"
                )
            text = values.map(lambda t: t.isoformat() if pd.notna(t) else np.nan)
        else:
            text = values.map(_as_text)
        out[column] = text.astype(object)
    line_no = np.arange(1, len(frame) + 1, dtype=np.int64)
    return FeedChunk(frame=out, line_no=line_no, extra_columns=())
