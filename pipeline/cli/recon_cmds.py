"""Commands for reconciliation: `eincome recon ...`, `eincome reconcile`, `eincome evaluate-recon`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from pipeline.cli.common import reasons_text, runtime, say
from pipeline.core.errors import UnusableInputError

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()

recon_app = typer.Typer(
    help="Reconciliation feeds (returns, bank statement, collector deposits) and settings.",
    no_args_is_help=True,
)


def _config(rt):
    from pipeline.reconciliation.reconcile import ReconConfig

    return ReconConfig.from_file(rt.settings.recon_config or None)


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UnusableInputError(
            say("--%(name)s %(text)r is not a date written YYYY-MM-DD", name=name, text=text)
        ) from None


@recon_app.command("ingest")
def recon_ingest(
    files: list[Path] = typer.Argument(..., help="Feed files (CSV, optionally .gz)."),
    kind: str = typer.Option(..., "--kind", help="returns | bank | collector"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per file."),
) -> None:
    """Validate and store reconciliation feed files; bad rows go to quarantine with reasons."""
    from pipeline.reconciliation.feeds import ingest_feed

    engine = runtime().engine
    for path in files:
        result = ingest_feed(engine, kind, path)
        counts = {
            "file": str(path),
            "kind": kind,
            "batch_id": result.batch_id,
            "rows_read": result.rows_read,
            "accepted": result.accepted,
            "quarantined": result.quarantined,
            "duplicates": result.duplicates,
        }
        if as_json:
            typer.echo(json.dumps(counts))
            continue
        typer.echo(
            say(
                "%(file)s: %(read)s read, %(accepted)s accepted, %(quarantined)s quarantined,"
                " %(duplicates)s duplicate (batch %(batch)s)",
                file=path,
                read=result.rows_read,
                accepted=result.accepted,
                quarantined=result.quarantined,
                duplicates=result.duplicates,
                batch=result.batch_id,
            )
        )
        for reason, n in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:5]:
            typer.echo(f"  {n:>6} x {reason}")


@recon_app.command("simulate")
def recon_simulate(
    out: Path = typer.Option(
        None, "--out", help="Output folder [default: $EINCOME_HOME/recon-sample]."
    ),
    from_sim: Path = typer.Option(
        None, "--from-sim", help="Simulator output (points.csv + feeds/) to build the books on."
    ),
    seed: int = typer.Option(7, "--seed", help="Random seed."),
) -> None:
    """Write returns, bank statement, collector deposits and recon_labels.csv with planted gaps."""
    from pipeline.core.settings import Settings
    from pipeline.testbed.recon_simulator import simulate_recon

    settings = Settings.from_env()
    out = out or settings.home / "recon-sample"
    manifest = simulate_recon(out, sim_dir=from_sim, seed=seed)
    planted = ", ".join(f"{k} {n}" for k, n in sorted(manifest.labels.items()))
    typer.echo(
        f"books for {manifest.start} .. {manifest.end - timedelta(days=1)} under {out}\n"
        f"  {manifest.returns_csv.name}, {manifest.bank_csv.name}, {manifest.collector_csv.name}, "
        f"{manifest.labels_csv.name}\n  labels: {planted}"
    )


@recon_app.command("config")
def recon_config() -> None:
    """Show the reconciliation tolerances in force, with what each one means."""
    from pipeline.reconciliation.reconcile import RECON_OPTIONS

    rt = runtime()
    config = _config(rt)
    source = rt.settings.recon_config or say(
        "defaults (set EINCOME_RECON_CONFIG to a JSON/YAML file)"
    )
    typer.echo(f"# {source}")
    for name, help_text in RECON_OPTIONS:
        typer.echo(f"{name} = {json.dumps(getattr(config, name))}\n    {help_text}")


@commands.command("reconcile")
def reconcile_cmd(
    period: str = typer.Option(None, "--period", help="A month, YYYY-MM."),
    start: str = typer.Option(None, "--start", help="First day, YYYY-MM-DD (with --end)."),
    end: str = typer.Option(None, "--end", help="Day after the last, YYYY-MM-DD."),
    as_of: str = typer.Option(
        None, "--as-of", help="Judge what is overdue as of this day [default: today]."
    ),
    scope: list[str] = typer.Option(
        None, "--scope", help="tax | collector | bank (repeatable) [default: all]."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the gaps; raise no cases."),
    output: str = typer.Option("table", "--format", help="table | json | csv"),
) -> None:
    """Match recorded sales, declared tax and deposits; raise every gap as a case (idempotent)."""
    from pipeline.core.phrases import dumps
    from pipeline.reconciliation import reconcile as recon

    if period and (start or end):
        raise UnusableInputError(say("give either --period or --start/--end, not both"))
    if period:
        first, last = recon.month_bounds(period)
    elif start and end:
        first, last = _day(start, "start"), _day(end, "end")
    else:
        raise UnusableInputError(say("give --period YYYY-MM, or --start and --end"))
    if output not in ("table", "json", "csv"):
        raise UnusableInputError(
            say("--format %(format)r is not one of table, json, csv", format=output)
        )
    # The CLI is an edge: here, and only here, "today" decides what is overdue.
    judged = _day(as_of, "as-of") or datetime.now(UTC).date()
    rt = runtime()
    scopes = tuple(scope) if scope else recon.SCOPES
    run = recon.find_gaps if dry_run else recon.reconcile
    result = run(rt.engine, first, last, as_of=judged, config=_config(rt), scopes=scopes)
    rows = [recon.gap_summary(g) for g in result.gaps]
    for row, gap in zip(rows, result.gaps, strict=True):  # the reasons in the run's language
        row["reasons"] = reasons_text(dumps(gap.parts), gap.reasons, gap.tz)
    if output == "json":
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
    elif output == "csv":
        import csv
        import sys

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["kind"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        _table(rows)
    if output == "table":
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.by_kind().items())) or say("none")
        typer.echo(
            say(
                "%(first)s .. %(last)s as of %(judged)s: %(periods)s point-periods,"
                " %(days)s collector-days, %(credits)s bank credits checked; gaps: %(kinds)s",
                first=first,
                last=last - timedelta(days=1),
                judged=judged,
                periods=result.periods_checked,
                days=result.collector_days_checked,
                credits=result.deposits_checked,
                kinds=kinds,
            )
        )
        if not dry_run:
            typer.echo(
                say(
                    "cases: %(new)s new, %(updated)s updated, %(kept)s decided left as they are,"
                    " %(cleared)s cleared",
                    new=result.cases_created,
                    updated=result.cases_updated,
                    kept=result.cases_kept,
                    cleared=result.cases_cleared,
                )
            )


def _rp(value) -> str:
    return "" if value is None else f"{value:,}".replace(",", ".")


def _table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in (
        "kind",
        "subject",
        "from",
        "to",
        "recorded",
        "declared",
        "deposited",
        "difference",
    ):
        table.add_column(
            column,
            justify="right"
            if column in ("recorded", "declared", "deposited", "difference")
            else "left",
        )
    for row in rows:
        table.add_row(
            row["kind"],
            row["subject"],
            row["from"],
            row["to"],
            _rp(row["recorded_rp"]),
            _rp(row["declared_rp"]),
            _rp(row["deposited_rp"]),
            _rp(row["difference_rp"]),
        )
    if rows:
        Console(width=160).print(table)


@commands.command("evaluate-recon")
def evaluate_recon(
    seeds: int = typer.Option(3, "--seeds", help="How many seeds (7, 8, ...) to simulate."),
    work: Path = typer.Option(
        None, "--work", help="Scratch folder [default: $EINCOME_HOME/recon-eval]."
    ),
    from_sim: Path = typer.Option(
        None, "--from-sim", help="Build the books on this simulator output instead of a small set."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Plant gaps of every pattern in simulated books, reconcile, report recall and false gaps."""
    from pipeline.core.settings import Settings
    from pipeline.testbed.recon_simulator import evaluate_reconciliation

    settings = Settings.from_env()
    if seeds < 1:
        raise UnusableInputError(say("--seeds %(seeds)s must be at least 1", seeds=seeds))
    work = work or settings.home / "recon-eval"
    from pipeline.reconciliation.reconcile import ReconConfig

    config = ReconConfig.from_file(settings.recon_config or None)
    result = evaluate_reconciliation(
        work, seeds=tuple(range(7, 7 + seeds)), config=config, sim_dir=from_sim
    )
    if as_json:
        typer.echo(json.dumps(result, default=str, indent=2))
        return
    typer.echo(f"seeds {result['seeds']}")
    for pattern, recall in result["recall"].items():
        typer.echo(
            f"  {pattern:<24} recall {recall:.2f}  "
            f"({result['found'].get(pattern, 0)}/{result['labelled'][pattern]})"
        )
    typer.echo(
        f"overall recall {result['overall_recall']:.2f}; false gaps {result['false_gaps']} "
        f"({result['false_gaps_on_clean']} on {result['clean_periods']} clean periods)"
    )
