"""CSV feeds: lines classified with numpy, well-formed ones parsed by pandas' C parser per block,
the rest one record at a time by Python's csv module."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.core.errors import UnusableInputError

if TYPE_CHECKING:
    from pipeline.intake.feeds.reader import FeedReader
from pipeline.intake.feeds.lines import (
    FEED_COLUMNS,
    OPTIONAL_COLUMNS,
    QUOTED_RECORD_MAX_LINES,
    REQUIRED_COLUMNS,
    FeedChunk,
    MalformedLine,
    _Lines,
    _missing_columns_error,
    _normal_header,
    _show_line,
)

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

    # long: one vectorised pass over a block's bytes; its dozen per-line numpy arrays feed every
    # step, so split into functions they would only be passed around.
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
        frame = _text_frame(body, self.header)
        if len(frame) != count:
            raise RuntimeError(f"feed reader: {count} plain lines gave {len(frame)} rows")
        return frame


# Longer bodies than this go to pandas: Arrow's blocks are sized to the longest line.
_ARROW_BLOCK_MAX = 1 << 30


def _longest_line(body: bytes) -> int:
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    return int(np.diff(newlines, prepend=-1).max()) if len(newlines) else len(body)


def _text_frame(body: bytes, header: list[str]) -> pd.DataFrame:
    """Plain lines (no quote, no stray CR, the right field count) as a frame of text columns.

    Arrow's CSV reader, multi-threaded, every column as a string (never a number or a time:
    the validator must see the raw value); only an empty field is missing, as NaN ("NA" or
    "null" may be a real txn_id). pandas' C parser when pyarrow is not installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        pa = None
    if pa is None or len(body) > _ARROW_BLOCK_MAX:
        return pd.read_csv(
            io.BytesIO(body),
            header=None,
            names=header,
            dtype=object,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            quoting=csv.QUOTE_NONE,
            encoding="utf-8",
            index_col=False,
        )
    table = pacsv.read_csv(
        pa.py_buffer(body),
        # A block must hold whole lines: one line longer than 4 MiB gets a block its size.
        read_options=pacsv.ReadOptions(
            column_names=header, block_size=max(4 << 20, _longest_line(body) + 1)
        ),
        parse_options=pacsv.ParseOptions(quote_char=False, double_quote=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            null_values=[""],
        ),
    )
    # object, not str: pandas 3's python-backed string arrays are several times slower to
    # test for missing values; missing as NaN, as the rest of the readers give it.
    columns = {}
    for name in header:
        values = table.column(name).to_numpy(zero_copy_only=False)
        if table.column(name).null_count:
            values[pd.isna(values)] = np.nan
        columns[name] = values
    return pd.DataFrame(columns, columns=header, dtype=object)


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
