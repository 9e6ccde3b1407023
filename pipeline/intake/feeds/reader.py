"""The entry to a feed file: sniff its format and hand it to the CSV or JSON Lines reader."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import UnusableInputError
from pipeline.intake.feeds.csv_feed import _read_csv
from pipeline.intake.feeds.jsonl_feed import _read_jsonl
from pipeline.intake.feeds.lines import FeedChunk, _ByteSource, _is_gzip, _Lines, feed_format


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
        if path.is_dir():
            raise UnusableInputError(
                f"feed {path}: is a folder; give its feed files (e.g. {path}/*.csv)"
            )
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
