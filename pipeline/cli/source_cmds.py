"""`eincome pull`: pull the configured sources (landing folders, HTTP APIs, POS tables) once."""

from __future__ import annotations

import json
import os
import sys

import typer

from pipeline.cli.common import err_console, runtime, say

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()


@commands.command("pull")
def pull(
    source: list[str] = typer.Option(
        None, "--source", "-s", help="Pull only this source (repeatable). Default: every source."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per batch."),
) -> None:
    """Pull new transactions from the sources in $EINCOME_SOURCES (default sources.yml).

    Secrets come from the environment variables the file names (or AIRFLOW_CONN_<ID> for a
    connection). A failing source is recorded in pipeline_failures and the others still run.
    """
    from pipeline.core.errors import UnusableInputError
    from pipeline.intake.ingest import BatchFailedError
    from pipeline.intake.sources import env_secrets, find_source, load_sources, pull_source
    from pipeline.intake.sources.errors import SourceUnavailableError
    from pipeline.store.failures import record_failure

    rt = runtime()
    configs = load_sources(rt.settings.sources_file)
    if source:
        configs = [find_source(configs, name) for name in source]
    if not configs:
        typer.echo(say("no sources configured in %(file)s", file=rt.settings.sources_file))
        return
    secrets = env_secrets(os.environ)
    failed = []
    for config in configs:
        try:
            results = pull_source(rt.engine, config, secrets=secrets)
        except (UnusableInputError, SourceUnavailableError, BatchFailedError) as exc:
            record_failure(rt.engine, f"pull {config.name}", None, str(exc))
            err_console.print(
                say("%(source)s: failed: %(reason)s", source=config.name, reason=exc),
                style="bold red",
                markup=False,
                highlight=False,
            )
            failed.append(config.name)
            continue
        for result in results:
            counts = {
                "source": config.name,
                "batch_id": result.batch_id,
                "rows_read": result.rows_read,
                "accepted": result.accepted,
                "quarantined": result.quarantined,
                "duplicates": result.duplicates,
                "status": result.status,
            }
            if as_json:
                typer.echo(json.dumps(counts))
            else:
                typer.echo(
                    say(
                        "%(source)s: batch %(batch)s read %(read)s, accepted %(accepted)s,"
                        " quarantined %(quarantined)s, duplicates %(duplicates)s (%(status)s)",
                        source=config.name,
                        batch=result.batch_id,
                        read=result.rows_read,
                        accepted=result.accepted,
                        quarantined=result.quarantined,
                        duplicates=result.duplicates,
                        status=result.status,
                    )
                )
        if not results and not as_json:
            typer.echo(say("%(source)s: nothing new", source=config.name))
    if failed:
        # main() runs click in non-standalone mode, where typer.Exit codes are swallowed.
        sys.exit(1)
