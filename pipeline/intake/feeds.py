"""Reading transaction feeds: CSV with a header or JSON Lines, optionally gzipped, in chunks.

Every physical line of a file is accounted for: it is the header, a blank line, part of a
record (a row with one value per column, which the validator then judges), or a *malformed*
line - wrong number of fields, broken quoting, bytes that are not UTF-8, a NUL byte, the cut-off
last line of a truncated gzip - which becomes a quarantined row with its raw text and line
number while the rest of the file is read on. ``FeedReader`` counts the lines on the way, so
the ingest can check that header + blank + record lines = the file's physical lines.

Every value is read as the text it was (never converted to a number or time): turning strings
into times and amounts is the validator's job. A file that is not a feed at all (empty, binary,
no usable header, missing columns) raises ``UnusableInputError`` naming the file.

Column names are matched case-insensitively after trimming spaces (``TXN_ID`` and ``" txn_id "``
are ``txn_id``), for CSV headers, JSON keys and source frames alike.

Why not ``pandas.read_csv`` on the whole file: it rejects a whole chunk for one row with an
extra field (or, on the first row, takes the first column as the index), lets an unclosed quote
swallow the lines after it silently, and stops at the first undecodable byte. Here the lines are
classified with numpy first; lines with no quote, NUL, stray carriage return or bad byte and the
right number of commas (nearly all of them) are still parsed by pandas' C parser in one call per
block, and only the rest goes through Python's ``csv`` module, one record at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def read_feed(path: Path | str, *, chunk_rows: int = 200_000) -> FeedReader:
    """The feed at ``path``, to iterate in chunks of at most ``chunk_rows`` rows."""
    return FeedReader(Path(path), chunk_rows=chunk_rows)


class FeedReader:
    """Iterate for ``FeedChunk``s; afterwards ``lines_read`` (physical lines), ``blank_lines``,
    ``header_lines`` and ``cut`` (why a truncated gzip ended early, else None) say what the
    file held. Raises UnusableInputError (naming the file) while iterating when the file is not
    a feed at all."""

    def __init__(self, path: Path, *, chunk_rows: int = 200_000):
        self.path = path
        self.chunk_rows = max(int(chunk_rows), 1)
        self.lines_read = 0
        self.blank_lines = 0
        self.header_lines = 0
        self.cut: str | None = None
        self._head = b""

    def __iter__(self) -> Iterator[FeedChunk]:
        path = self.path
        if not path.is_file():
            raise UnusableInputError(f"feed {path}: no such file")
        source = _ByteSource(path, _is_gzip(path))
        lines = _Lines(source, self)
        head = lines.peek_head()
        if not head.strip():
            raise UnusableInputError(f"feed {path}: the file is empty")
        self._head = head
        text_head = codecs.getincrementaldecoder("utf-8-sig")(errors="replace").decode(head)
        if feed_format(path, text_head) == "jsonl":
            yield from _read_jsonl(self, lines)
        else:
            yield from _read_csv(self, lines)
        self.cut = source.cut


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


# --- CSV ----------------------------------------------------------------------------------


def _header_error(path: Path, raw: bytes, head: bytes) -> UnusableInputError:
    if b"\x00" in head or any(b < 9 for b in raw):
        return UnusableInputError(f"feed {path}: binary data, not a CSV or JSON Lines feed")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return UnusableInputError(
            f"feed {path}: not UTF-8 text (header byte {exc.start}: {raw[exc.start : exc.start + 1]!r})"
        )
    return UnusableInputError(f"feed {path}: the header line cannot be read as CSV")


def _read_csv(reader: FeedReader, lines: _Lines) -> Iterator[FeedChunk]:
    path = reader.path
    raw_header = lines.take_line()
    while raw_header is not None and not raw_header.strip():
        reader.header_lines += 1  # blank lines before the header
        raw_header = lines.take_line()
    if raw_header is None:
        raise UnusableInputError(f"feed {path}: the file is empty")
    reader.header_lines += 1
    try:
        text = raw_header.decode("utf-8").rstrip("\r\n")
        if "\x00" in text:
            raise ValueError
        (names,) = list(csv.reader([text], strict=True))
    except (ValueError, csv.Error):
        raise _header_error(path, raw_header, reader._head) from None
    header = _normal_header(path, names)
    if any(c not in header for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(path, header)
    extra = tuple(c for c in header if c not in FEED_COLUMNS)
    parser = _CsvBlockParser(header)
    want = reader.chunk_rows
    while True:
        block = lines.take_block(want)
        if block is None:
            break
        data, first_line, at_end = block
        parsed = parser.parse(data, first_line, final=at_end)
        want = reader.chunk_rows
        if parsed.rest:
            lines.give_back(parsed.rest)
            if parsed.consumed == 0:
                # A quoted record runs past the whole block: read a longer one.
                want = max(want, data.count(b"\n")) * 2
        lines.consumed(parsed.consumed)
        if not parsed.consumed:
            continue
        reader.blank_lines += parsed.blank
        if source_cut := lines.source.cut:
            if at_end and parsed.unterminated_last:
                _cut_last_line(parsed, source_cut)
        frame = parsed.frame
        for column in OPTIONAL_COLUMNS:
            if column not in frame.columns:
                frame[column] = np.nan
        yield FeedChunk(
            frame=frame,
            line_no=parsed.line_no,
            extra_columns=extra,
            malformed=parsed.malformed,
            lines=parsed.consumed - parsed.blank,
        )


def _cut_last_line(parsed: _ParsedBlock, why: str) -> None:
    """The last line of a truncated archive is cut off: never trust it as a row."""
    last = parsed.last_line_no
    reason = f"the file ends inside this line: {why}"
    keep = parsed.line_no != last
    if not keep.all():
        row = parsed.frame[~keep].iloc[0]
        text = ",".join("" if pd.isna(v) else str(v) for v in row.tolist())
        parsed.frame = parsed.frame[keep].reset_index(drop=True)
        parsed.line_no = parsed.line_no[keep]
        parsed.malformed.append(MalformedLine(last, text, reason))
    else:
        parsed.malformed = [
            MalformedLine(m.line_no, m.text, reason) if m.line_no == last else m
            for m in parsed.malformed
        ]


@dataclass
class _ParsedBlock:
    frame: pd.DataFrame
    line_no: np.ndarray
    malformed: list[MalformedLine]
    consumed: int  # physical lines used from the block
    blank: int
    rest: bytes  # an unfinished quoted record, handed back
    unterminated_last: bool
    last_line_no: int


class _CsvBlockParser:
    def __init__(self, header: list[str]):
        self.header = header
        self.width = len(header)

    def parse(self, data: bytes, first_line: int, *, final: bool) -> _ParsedBlock:
        width = self.width
        arr = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(arr == 10)
        unterminated = not data.endswith(b"\n")
        ends = np.append(newlines, len(data)) if unterminated else newlines  # index of "\n"
        n = len(ends)
        starts = np.empty(n, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        # Line content: [starts, content_end), without "\n" and a final "\r".
        content_end = ends.copy()
        has_cr_end = (content_end > starts) & (arr[np.maximum(content_end - 1, 0)] == 13)
        content_end = content_end - has_cr_end

        def per_line(mask: np.ndarray) -> np.ndarray:
            # Positions, then their lines: much faster than a segmented sum over every byte.
            line_of = np.searchsorted(starts, np.flatnonzero(mask), side="right") - 1
            return np.bincount(line_of, minlength=n)

        commas = per_line(arr == 44)
        quotes = per_line(arr == 34)
        nul = per_line(arr == 0)
        cr_inside = per_line(arr == 13) - has_cr_end
        high = per_line(arr >= 128)
        # A blank line has no comma; only those few are looked at byte by byte.
        blank = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(commas == 0):
            blank[i] = not data[starts[i] : ends[i]].strip()

        reasons: dict[int, str] = {}
        for i in np.flatnonzero(nul > 0):
            reasons[int(i)] = "the line holds a NUL byte"
        if high.any():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                for i in np.flatnonzero(high > 0):
                    i = int(i)
                    piece = data[starts[i] : content_end[i]]
                    try:
                        piece.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        bad = piece[exc.start : exc.start + 1]
                        reasons.setdefault(
                            i,
                            f"the line is not UTF-8 text (byte {bad!r} at column {exc.start + 1})",
                        )
        careful = ((quotes > 0) | (cr_inside > 0)) & ~blank
        plain = ~careful & ~blank
        hard = set(reasons)  # lines no quoted record may span

        consumed = n
        rest = b""
        parsed_rows: list[tuple[int, list[str]]] = []  # (line index, fields)
        covered = np.zeros(n, dtype=bool)  # continuation lines of a quoted record
        if careful.any():
            odd = (quotes % 2 == 1) & careful
            odd_lines = np.flatnonzero(odd)
            for i in np.flatnonzero(careful):
                i = int(i)
                if covered[i] or i in reasons or i >= consumed:
                    continue
                if odd[i]:
                    later = odd_lines[odd_lines > i]
                    j = int(later[0]) if len(later) else -1
                    if j < 0 and not final and n - i <= QUOTED_RECORD_MAX_LINES:
                        # The record may go on in the next block: hand it back.
                        consumed = i
                        rest = data[starts[i] :]
                        break
                    span_ok = (
                        j > i
                        and j - i < QUOTED_RECORD_MAX_LINES
                        and not any(k in hard for k in range(i, j + 1))
                        and not (commas[i + 1 : j + 1] >= width - 1).any()
                    )
                    fields = None
                    if span_ok:
                        text = data[starts[i] : content_end[j]].decode("utf-8")
                        fields = _csv_fields(text, width)
                    if isinstance(fields, list):
                        parsed_rows.append((i, fields))
                        covered[i + 1 : j + 1] = True
                    else:
                        reasons[i] = (
                            "the line opens a quoted field that is not closed on it "
                            "(an unclosed quote would swallow the lines after it)"
                        )
                    continue
                text = data[starts[i] : content_end[i]].decode("utf-8")
                fields = _csv_fields(text, width)
                if isinstance(fields, list):
                    parsed_rows.append((i, fields))
                else:
                    reasons[i] = fields

        wrong_width = plain & ~covered & (commas != width - 1)
        for i in np.flatnonzero(wrong_width):
            reasons.setdefault(
                int(i),
                f"the line has {int(commas[i]) + 1} fields; the header has {width}",
            )
        if consumed < n:
            keep_lines = np.arange(n) < consumed
        else:
            keep_lines = np.ones(n, dtype=bool)
        bad_mask = np.zeros(n, dtype=bool)
        if reasons:
            bad_mask[list(reasons)] = True
        fast = plain & ~bad_mask & keep_lines
        # A plain line inside an accepted quoted record is part of that record.
        fast &= ~covered
        frame = self._fast_frame(data, starts, ends, fast, unterminated)
        line_index = np.flatnonzero(fast)
        if parsed_rows:
            slow = pd.DataFrame([f for _, f in parsed_rows], columns=self.header, dtype=object)
            slow = slow.where(slow != "", np.nan)
            frame = pd.concat([frame, slow], ignore_index=True)
            line_index = np.concatenate([line_index, [i for i, _ in parsed_rows]])
            order = np.argsort(line_index, kind="stable")
            frame = frame.iloc[order].reset_index(drop=True)
            line_index = line_index[order]
        malformed = [
            MalformedLine(first_line + i, _show_line(data[starts[i] : content_end[i]]), reasons[i])
            for i in sorted(k for k in reasons if k < consumed and not covered[k])
        ]
        blank_count = int((blank & keep_lines & ~covered).sum())
        return _ParsedBlock(
            frame=frame,
            line_no=(line_index + first_line).astype(np.int64),
            malformed=malformed,
            consumed=consumed,
            blank=blank_count,
            rest=rest,
            unterminated_last=unterminated and consumed == n,
            last_line_no=first_line + n - 1,
        )

    def _fast_frame(
        self, data: bytes, starts: np.ndarray, ends: np.ndarray, fast: np.ndarray, unterminated
    ) -> pd.DataFrame:
        """The plain lines, parsed by pandas' C parser in one call over their joined bytes."""
        count = int(fast.sum())
        if not count:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in self.header})
        if fast.all():
            body = data if not unterminated else data + b"\n"
        else:
            # Runs of consecutive plain lines, joined: one slice per run, not per line.
            edges = np.flatnonzero(np.diff(np.concatenate([[0], fast.view(np.int8), [0]])))
            pieces = [
                data[starts[a] : ends[b - 1] + 1]
                for a, b in zip(edges[::2], edges[1::2], strict=True)
            ]
            body = b"".join(pieces)
            if not body.endswith(b"\n"):
                body += b"\n"
        frame = pd.read_csv(
            io.BytesIO(body),
            header=None,
            names=self.header,
            # object, not str: every value stays the text it was, and pandas 3's python-backed
            # string arrays are several times slower to test for missing values.
            dtype=object,
            # Only an empty field is missing: "NA" or "null" may be a real txn_id.
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            quoting=csv.QUOTE_NONE,
            encoding="utf-8",
            index_col=False,
        )
        if len(frame) != count:
            raise RuntimeError(f"feed reader: {count} plain lines gave {len(frame)} rows")
        return frame


def _csv_fields(text: str, width: int) -> list[str] | str:
    """The fields of one CSV record, or the reason it is malformed."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        return f"the line's quoting is malformed ({exc})"
    if len(rows) != 1:
        return "the line's quoting is malformed"
    if len(rows[0]) != width:
        return f"the line has {len(rows[0])} fields; the header has {width}"
    return rows[0]


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


# --- frames from pull sources -------------------------------------------------------------


def frame_chunk(frame: pd.DataFrame, *, source_ref: str) -> FeedChunk:
    """A caller's frame (one API page, one SQL slice) as a feed chunk, values made strings.

    Build the frame with ``dtype=object`` from the source's values: a numeric id column with a
    null in it would otherwise be float64, and its ids would read "900000.0" and "nan".
    """
    frame = frame.rename(columns=normal_column)
    columns = [str(c) for c in frame.columns]
    if any(c not in columns for c in REQUIRED_COLUMNS):
        raise _missing_columns_error(Path(source_ref), columns)
    out = pd.DataFrame(index=range(len(frame)))
    nonscalar = np.full(len(frame), None, dtype=object)
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
            if values.dtype == object:
                structured = values.map(lambda v: isinstance(v, (dict, list))).to_numpy(bool)
                nonscalar[structured & pd.isna(nonscalar)] = column
            text = values.map(_as_text)
        out[column] = text.astype(object)
    line_no = np.arange(1, len(frame) + 1, dtype=np.int64)
    return FeedChunk(
        frame=out,
        line_no=line_no,
        extra_columns=(),
        nonscalar=nonscalar,
        lines=len(frame),
    )
