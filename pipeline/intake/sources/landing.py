"""Landing folder: feed files dropped by collection points, each taken once, then archived.

A file is recognised by its sha256 (``ingest_batches.sha256``), so a file dropped twice, or a
copy under another name, is archived without being ingested again. A file still being written
is left alone: temporary names (``*.part``, ``*.tmp``, dot-files) are never matched, and a file
is taken only once it has not changed for ``settle_seconds``.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select, update

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources.config import LandingSource
from pipeline.store.schema import ingest_batches

FEED_SUFFIXES = (".csv", ".jsonl", ".csv.gz", ".jsonl.gz")
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart")
# ingest statuses that mean "this file's content is stored": seeing its sha256 again means skip it.
DONE_STATUSES = ("ok",)


@dataclass(frozen=True)
class LandingFile:
    path: Path
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settled_files(config: LandingSource, *, now: float | None = None) -> list[Path]:
    """Feed files in the landing folder that are complete: right name, unchanged for a while."""
    if not config.path.is_dir():
        raise UnusableInputError(
            f"landing source {config.name}: folder {config.path} does not exist"
        )
    cutoff = (time.time() if now is None else now) - config.settle_seconds
    found = []
    for path in sorted(config.path.glob(config.pattern)):
        name = path.name.lower()
        if not path.is_file() or name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES):
            continue
        if not name.endswith(FEED_SUFFIXES):
            continue
        if path.stat().st_mtime > cutoff:
            continue  # still being written (or just finished): next run takes it
        found.append(path)
    return found


def already_ingested(engine: Engine, sha256: str) -> bool:
    with engine.connect() as connection:
        return (
            connection.execute(
                select(ingest_batches.c.batch_id)
                .where(
                    ingest_batches.c.sha256 == sha256, ingest_batches.c.status.in_(DONE_STATUSES)
                )
                .limit(1)
            ).first()
            is not None
        )


def archive_file(path: Path, archive: Path, sha256: str, *, when: datetime) -> Path:
    """Move a processed file to ``archive/YYYY-MM-DD/``; a different file of the same name keeps both."""
    folder = archive / when.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{sha256[:12]}-{path.name}"
    shutil.move(str(path), target)
    return target


def pull_landing(
    engine: Engine,
    config: LandingSource,
    *,
    now: float | None = None,
    chunk_rows: int | None = None,
    future_tolerance=None,
) -> list:
    """Ingest every settled new file of the folder and archive it; returns the BatchResults.

    A file the ingest rejects as a whole is moved to ``archive/rejected/`` so it does not block
    the folder, and the pull then fails naming it: ops must look at it.
    """
    from pipeline.intake.ingest import ingest_file

    source = f"landing:{config.name}"
    options = {}
    if chunk_rows is not None:
        options["chunk_rows"] = chunk_rows
    if future_tolerance is not None:
        options["future_tolerance"] = future_tolerance
    results, rejected = [], []
    for path in settled_files(config, now=now):
        digest = file_sha256(path)
        when = datetime.now(UTC)
        if already_ingested(engine, digest):
            archive_file(path, config.archive, digest, when=when)
            continue
        try:
            result = ingest_file(engine, path, source=source, **options)
        except UnusableInputError as exc:
            archive_file(path, config.archive / "rejected", digest, when=when)
            rejected.append(f"{path.name}: {exc}")
            continue
        # The ingest lane records the checksum itself; this makes sure the skip above works even
        # if a batch was written without one.
        with engine.begin() as connection:
            connection.execute(
                update(ingest_batches)
                .where(
                    ingest_batches.c.batch_id == result.batch_id, ingest_batches.c.sha256.is_(None)
                )
                .values(sha256=digest)
            )
        if result.status in DONE_STATUSES:
            archive_file(path, config.archive, digest, when=when)
        else:
            archive_file(path, config.archive / "rejected", digest, when=when)
            rejected.append(f"{path.name}: ingest status {result.status}")
        results.append(result)
    if rejected:
        raise UnusableInputError(
            f"landing source {config.name}: {len(rejected)} file(s) rejected and moved to "
            f"{config.archive / 'rejected'}: " + "; ".join(rejected)
        )
    return results
