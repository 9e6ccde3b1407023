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

from pipeline.intake.feeds.frames import frame_chunk
from pipeline.intake.feeds.lines import (
    FEED_COLUMNS,
    JSON_SUFFIXES,
    OPTIONAL_COLUMNS,
    QUOTED_RECORD_MAX_LINES,
    REQUIRED_COLUMNS,
    FeedChunk,
    MalformedLine,
    feed_format,
    normal_column,
)
from pipeline.intake.feeds.reader import FeedReader, read_feed

__all__ = [
    "FEED_COLUMNS",
    "JSON_SUFFIXES",
    "OPTIONAL_COLUMNS",
    "QUOTED_RECORD_MAX_LINES",
    "REQUIRED_COLUMNS",
    "FeedChunk",
    "FeedReader",
    "MalformedLine",
    "feed_format",
    "frame_chunk",
    "normal_column",
    "read_feed",
]
