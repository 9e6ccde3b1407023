"""What every feed reader shares: the columns, chunks and malformed lines, header matching, and
the file's physical lines (decompressed, counted)."""

from __future__ import annotations

import codecs
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError

if TYPE_CHECKING:
    from pipeline.intake.feeds.reader import FeedReader

REQUIRED_COLUMNS = ("txn_id", "point_id", "occurred_at", "amount", "payment_method", "status")
OPTIONAL_COLUMNS = ("operator_id", "payer_ref")
FEED_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 64 * 1024
_READ_BYTES = 1 << 20
# A block of lines parsed at once: at most chunk_rows lines or this many bytes.
_BLOCK_BYTES = 32 << 20
# A quoted field may hold line breaks, but a record spanning more lines than this is taken
# for an unclosed quote (a real address or note spans a few).
QUOTED_RECORD_MAX_LINES = 20


@dataclass(frozen=True)
class MalformedLine:
    """A physical line that could not be split into one value per column."""

    line_no: int
    text: str  # the line as received (undecodable bytes as \\xNN escapes)
    reason: str


@dataclass
class FeedChunk:
    """A slice of a feed: ``frame`` holds FEED_COLUMNS as strings (missing values are NaN).

    ``line_no`` is the physical line of the file each row starts on (1 = the CSV header; for a
    frame, the 1-based row). ``raw`` holds each row as received, as JSON text, when the reader
    has it cheaply (JSON Lines); otherwise it is rebuilt from ``frame`` for the few rows that
    need it (quarantine). ``malformed`` are this chunk's lines that are not rows at all;
    ``nonscalar`` names, per row, a field that held a JSON object or array (else None).
    ``lines`` counts the physical lines the rows and malformed lines occupy.
    """

    frame: pd.DataFrame
    line_no: np.ndarray
    raw: list[str] | None = None
    extra_columns: tuple[str, ...] = ()
    malformed: list[MalformedLine] = field(default_factory=list)
    nonscalar: np.ndarray | None = None
    lines: int = 0

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def records(self) -> int:
        """Rows plus malformed lines: what the batch counts as read."""
        return len(self.frame) + len(self.malformed)

    def raw_row(self, position: int) -> str:
        """The row at ``position`` as received, as JSON."""
        if self.raw is not None:
            return self.raw[position]
        row = self.frame.iloc[position]
        values = {c: _plain(row[c]) for c in (*FEED_COLUMNS, *self.extra_columns) if c in row.index}
        return json.dumps(values, ensure_ascii=False)


def _plain(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def normal_column(name: object) -> str:
    """A column name as matched: trimmed, and lower-cased when it is a feed column."""
    text = str(name).strip()
    return text.lower() if text.lower() in FEED_COLUMNS else text


def _normal_header(path: Path, names: list) -> list[str]:
    header = [normal_column(n) for n in names]
    repeated = sorted({c for c in header if c in FEED_COLUMNS and header.count(c) > 1})
    if repeated:
        raise UnusableInputError(
            f"feed {path}: column(s) {', '.join(repeated)} appear more than once in the header "
            "(names are matched ignoring case and surrounding spaces)"
        )
    # Other columns are only kept for the quarantine's raw JSON: repeated names get a suffix.
    seen: dict[str, int] = {}
    unique = []
    for name in header:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if not count else f"{name}.{count}")
    return unique


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


class _ByteSource:
    """The file's (decompressed) bytes in blocks. A gzip that ends early or turns corrupt
    yields what could be decompressed, then sets ``cut`` to say why the rest is missing."""

    def __init__(self, path: Path, gz: bool):
        self.path, self.gz = path, gz
        self.cut: str | None = None

    def blocks(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            if not self.gz:
                while block := handle.read(_READ_BYTES):
                    yield block
                return
            decompressor = zlib.decompressobj(31)
            produced = 0
            member_open = True
            while raw := handle.read(_READ_BYTES):
                while raw:
                    if not member_open:
                        if not raw.startswith(_GZIP_MAGIC):
                            if raw.strip(b"\x00"):
                                self.cut = f"data after the gzip archive's end at byte {produced:,} is not gzip"
                            return
                        decompressor, member_open = zlib.decompressobj(31), True
                    try:
                        out = decompressor.decompress(raw)
                    except zlib.error as exc:
                        self.cut = f"the gzip data is corrupt after {produced:,} bytes ({exc})"
                        return
                    produced += len(out)
                    if out:
                        yield out
                    if decompressor.eof:
                        raw, member_open = decompressor.unused_data, False
                    else:
                        raw = b""
            if member_open:
                tail = decompressor.flush()
                if tail:
                    yield tail
                self.cut = (
                    f"the gzip archive is cut short: it ends after {produced + len(tail):,} "
                    "bytes of data, before its end marker"
                )


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
        f"a feed needs {', '.join(REQUIRED_COLUMNS)}[, {', '.join(OPTIONAL_COLUMNS)}] "
        "(matched ignoring case and surrounding spaces)"
    )


def _show_line(raw: bytes) -> str:
    return raw.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")


class _Lines:
    """Physical lines of the (decompressed) file, counted into the reader's ``lines_read``."""

    def __init__(self, source: _ByteSource, reader: FeedReader):
        self.source, self.reader = source, reader
        self._blocks = source.blocks()
        self._buffer = bytearray()
        self._eof = False
        self.next_line = 1  # physical line number of the buffer's first line
        self._bom_checked = False
        self.last_unterminated = False

    def _more(self) -> bool:
        """Append the next block to the buffer; False at the end of the file."""
        if self._eof:
            return False
        block = next(self._blocks, None)
        if block is None:
            self._eof = True
            return False
        self._buffer += block
        if not self._bom_checked and len(self._buffer) >= 3:
            if self._buffer.startswith(codecs.BOM_UTF8):
                del self._buffer[:3]
            self._bom_checked = True
        return True

    def peek_head(self) -> bytes:
        while len(self._buffer) < _SNIFF_BYTES and self._more():
            pass
        if not self._bom_checked and self._buffer.startswith(codecs.BOM_UTF8):
            del self._buffer[:3]
        self._bom_checked = True
        return bytes(self._buffer[:_SNIFF_BYTES])

    def take_line(self) -> bytes | None:
        """The next physical line (with its newline), or None at the end."""
        while self._buffer.find(b"\n") < 0 and self._more():
            pass
        if not self._buffer:
            return None
        end = self._buffer.find(b"\n")
        end = len(self._buffer) if end < 0 else end + 1
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        self.next_line += 1
        self.reader.lines_read += 1
        return line

    def iter_lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line) for every remaining physical line."""
        while True:
            more = self._more()
            data = bytes(self._buffer)
            self._buffer.clear()
            parts = data.split(b"\n")
            tail = parts.pop()
            for part in parts:
                self.reader.lines_read += 1
                self.next_line += 1
                yield self.next_line - 1, part + b"\n"
            if not more:
                if tail:
                    self.reader.lines_read += 1
                    self.next_line += 1
                    self.last_unterminated = True
                    yield self.next_line - 1, tail
                return
            self._buffer += tail

    def take_block(self, max_lines: int) -> tuple[bytes, int, bool] | None:
        """(bytes of up to ``max_lines`` complete lines, first line number, at_end) or None."""
        while (
            self._buffer.count(b"\n") < max_lines and len(self._buffer) < _BLOCK_BYTES
        ) and self._more():
            pass
        while self._buffer.find(b"\n") < 0 and self._more():
            pass  # one line longer than a block: take it whole
        if not self._buffer:
            return None
        view = np.frombuffer(self._buffer, dtype=np.uint8)
        newlines = np.flatnonzero(view == 10)
        del view  # a numpy view pins the bytearray's size
        if len(newlines) > max_lines:
            end = int(newlines[max_lines - 1]) + 1
        elif self._eof:
            end = len(self._buffer)
        else:
            end = int(newlines[-1]) + 1
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        at_end = not self._buffer and (self._eof or not self._more())
        return data, self.next_line, at_end

    def give_back(self, rest: bytes) -> None:
        """Put the unprocessed tail of a block back (a quoted record continues past it)."""
        self._buffer[:0] = rest

    def consumed(self, lines: int) -> None:
        self.reader.lines_read += lines
        self.next_line += lines

    def need_more(self) -> bool:
        return not self._eof or bool(self._buffer)
