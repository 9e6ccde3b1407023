"""`eincome ingest FILE...`: load feed files, one batch per file, and report the counts."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli.common import err_console, reason_of, runtime, say
from pipeline.core.errors import UnusableInputError
from pipeline.intake.ingest import BatchFailedError, ingest_file

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()

# Below this size a file ingests in about a second: a progress bar would only flicker.
_PROGRESS_MIN_BYTES = 5_000_000
COUNT_KEYS = ("rows_read", "accepted", "quarantined", "duplicates")


@commands.command("ingest")
def ingest(
    files: list[Path] = typer.Argument(
        ..., help="Feed files: CSV with header or JSON Lines, optionally .gz."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per file on stdout instead of a table."
    ),
    source: str = typer.Option(
        "file", "--source", help="Source name recorded in each batch's lineage."
    ),
) -> None:
    """Validate and store feed files; bad rows go to quarantine, duplicates are skipped.

    Exits 0 when every file was ingested (quarantined rows are not an error), 2 when a file
    was not a feed at all or was cut short (its readable rows are stored), and 1 when a batch
    failed for another reason (the database); the other files are still ingested.
    """
    rt = runtime()
    settings = rt.settings
    results, failures, broken = [], [], []
    for path in files:
        show_bar = (
            sys.stderr.isatty() and path.is_file() and path.stat().st_size >= _PROGRESS_MIN_BYTES
        )
        try:
            result = ingest_file(
                rt.engine,
                path,
                source=source,
                chunk_rows=settings.chunk_rows,
                future_tolerance=timedelta(minutes=settings.future_tolerance_minutes),
                earliest=settings.earliest_time,
                progress=show_bar,
            )
            row = result.as_dict()
            if result.status == "partial":
                failures.append(result.message)
                _error(result.message)
        except (UnusableInputError, BatchFailedError) as exc:
            (broken if isinstance(exc, BatchFailedError) else failures).append(str(exc))
            row = {
                "file": str(path),
                "batch_id": getattr(exc, "batch_id", None),
                "status": "failed" if isinstance(exc, BatchFailedError) else "rejected",
                **dict.fromkeys(COUNT_KEYS, 0),
                "message": str(exc),
            }
            _error(exc)
        results.append(row)
        if as_json:
            keys = ("file", *COUNT_KEYS, "status", "batch_id", "message")
            typer.echo(json.dumps({k: row.get(k) for k in keys}))
    if not as_json:
        _print_table(results)
    # main() runs click in non-standalone mode, where typer.Exit codes are swallowed.
    if broken:
        sys.exit(1)
    if failures:
        sys.exit(2)


def _error(reason) -> None:
    err_console.print(
        say("error: %(reason)s", reason=reason if isinstance(reason, str) else reason_of(reason)),
        style="bold red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _print_table(results: list[dict]) -> None:
    # Column names are the --json keys, so a person and a script read the same counts.
    table = Table(title=say("Ingest"))
    table.add_column("file", overflow="fold")
    for key in COUNT_KEYS:
        table.add_column(key.replace("_", " "), justify="right")
    table.add_column("status")
    table.add_column("batch", justify="right")
    for row in results:
        table.add_row(
            row["file"],
            *(f"{row[k]:,}" for k in COUNT_KEYS),
            row["status"],
            str(row.get("batch_id") or ""),
        )
    Console().print(table)
