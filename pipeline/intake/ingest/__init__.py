"""Ingest: a feed file (or a pull source's frame) in, validated, deduplicated, stored, aggregated.

One batch = one unit of input. Its lineage row in ``ingest_batches`` is committed first (status
"running", with the process that owns it); all of its data - transactions, quarantine rows,
re-aggregated hours and the final counts - is written in ONE database transaction, so a crash
at any point leaves no half batch: the data rolls back and the batch row says "failed". A
process killed outright cannot say so: its batch stays "running" until the next ingest (or the
ops page) calls ``recover_abandoned_batches``, which marks it failed once its owner is provably
gone. For every batch that finishes, ``accepted + quarantined + duplicates == rows_read``, and
for a file, header + blank + record lines == ``lines_read``, its physical line count.
"""

from pipeline.intake.ingest.batches import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_FUTURE_TOLERANCE,
    STALE_AFTER,
    BatchFailedError,
    BatchResult,
    recover_abandoned_batches,
)
from pipeline.intake.ingest.run import ingest_file, ingest_frame, ingest_rows, quarantine_reasons

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_FUTURE_TOLERANCE",
    "STALE_AFTER",
    "BatchFailedError",
    "BatchResult",
    "ingest_file",
    "ingest_frame",
    "ingest_rows",
    "quarantine_reasons",
    "recover_abandoned_batches",
]
