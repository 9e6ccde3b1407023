"""Commands for the simulator and the evaluation harness."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import say

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()


@commands.command("simulate")
def simulate_cmd(
    out: Path = typer.Option(None, "--out", help="Output folder (default: $EINCOME_HOME/sample)."),
    points: int = typer.Option(40, "--points", help="Collection points to simulate."),
    weeks: int = typer.Option(8, "--weeks", help="Weeks of trade (the first 4 are clean)."),
    days: int = typer.Option(None, "--days", help="Days of trade; overrides --weeks."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed writes the same files."),
    split: str = typer.Option(
        "day", "--split", help="Feed files per 'day', per 'week', or 'none'."
    ),
    volume: float = typer.Option(1.0, "--volume", help="Scale every point's trade by this."),
    target_rows: int = typer.Option(
        None, "--target-rows", help="Scale trade so the feeds hold about this many rows."
    ),
    leakage: bool = typer.Option(True, "--leakage/--no-leakage", help="Plant labelled leakage."),
    bad_rows: bool = typer.Option(
        True, "--bad-rows/--no-bad-rows", help="Add rows validation must reject."
    ),
    scenario: str = typer.Option(
        "varied", "--scenario", help="'varied' (the harder regency) or 'classic' (the old one)."
    ),
    push: str = typer.Option(
        None,
        "--push",
        help="Push one simulated day to this URL (http://host:port/api/v1/transactions) as "
        "devices would, one per point, instead of writing feeds.",
    ),
    key: str = typer.Option(None, "--key", help="With --push: the API key every device uses."),
    keys_file: Path = typer.Option(
        None, "--keys", help="With --push: a JSON file {point_id: key}, one key per device."
    ),
    rate: float = typer.Option(
        None, "--rate", help="With --push: sales a second in all (default: the day's own pace)."
    ),
    speed: float = typer.Option(
        1.0, "--speed", help="With --push and no --rate: times faster than real time."
    ),
    seconds: float = typer.Option(None, "--seconds", help="With --push: stop after this long."),
) -> None:
    """Write sample feeds, a point registry, leakage labels, closures and a calendar; or, with
    --push, replay a simulated day against the push API (load the same registry there first)."""
    from pipeline.core.settings import Settings

    if push:
        _push_day(push, key, keys_file, points, seed, rate, speed, seconds, target_rows, out)
        return
    from pipeline.testbed.simulator import simulate

    out = out or Settings.from_env().home / "sample"
    manifest = simulate(
        out,
        points=points,
        weeks=weeks,
        days=days,
        seed=seed,
        split=split,
        volume=volume,
        target_rows=target_rows,
        leakage=leakage,
        bad_rows=bad_rows,
        scenario=scenario,
    )
    planted = ", ".join(f"{kind} {count}" for kind, count in manifest.events.items())
    typer.echo(
        say(
            "%(points)s points, %(rows)s feed rows in %(files)s files (%(bad)s bad) under %(out)s",
            points=manifest.points,
            rows=manifest.rows,
            files=len(manifest.feeds),
            bad=sum(manifest.bad_rows.values()),
            out=out,
        )
    )
    typer.echo(
        say(
            "window %(start)s .. %(end)s",
            start=manifest.start.isoformat(),
            end=manifest.end.isoformat(),
        )
    )
    typer.echo(say("labels: %(planted)s", planted=planted))


def _push_day(url, key, keys_file, points, seed, rate, speed, seconds, target_rows, out) -> None:
    import json
    import tempfile

    from pipeline.core.errors import UnusableInputError
    from pipeline.testbed.push_devices import push_day, simulated_day

    if bool(key) == bool(keys_file):
        raise UnusableInputError("--push needs either --key KEY or --keys FILE")
    keys = key or json.loads(Path(keys_file).read_text())
    rows = target_rows or (int(rate * seconds * 1.1) if rate and seconds else None)
    with tempfile.TemporaryDirectory() as scratch:
        day = simulated_day(out or Path(scratch), points=points, rows=rows, seed=seed)
        report = push_day(url, day, keys, rate=rate, speed=speed, seconds=seconds)
    typer.echo(json.dumps(report.summary()))


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}"


@commands.command("evaluate")
def evaluate_cmd(
    seed_set: str = typer.Option(
        "report",
        "--seed-set",
        help="'report' (seeds 101-103, never tuned on) or 'tune' (seeds 1-5).",
    ),
    seeds: int = typer.Option(None, "--seeds", help="How many seeds to run (default: the set's)."),
    first_seed: int = typer.Option(
        None, "--first-seed", help="Run other seeds: this one and the next --seeds - 1."
    ),
    scenario: str = typer.Option(
        "varied", "--scenario", help="Simulator scenario: 'varied' or 'classic'."
    ),
    in_sample: bool = typer.Option(
        False,
        "--in-sample",
        help="The old hindsight measurement: one model and usual levels from the whole range.",
    ),
    points: int = typer.Option(40, "--points", help="Collection points per simulation."),
    weeks: int = typer.Option(8, "--weeks", help="Weeks per simulation (the first 4 are clean)."),
    start: str = typer.Option(
        None, "--start", help="First simulated day, YYYY-MM-DD in Jakarta (default 2025-11-03)."
    ),
    keep: Path = typer.Option(
        None, "--keep", help="Keep each seed's simulation and database in DIR/seed-N to inspect."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Run the real pipeline on simulated feeds and measure detection against the labels."""
    from rich.console import Console

    from pipeline.testbed.evaluation import evaluate, seed_use, to_json

    chosen = _chosen_seeds(seed_set, seeds, first_seed)
    report = evaluate(
        chosen,
        points=points,
        weeks=weeks,
        start=_first_day(start),
        keep=keep,
        scenario=scenario,
        in_sample=in_sample,
    )
    if as_json:
        typer.echo(to_json(report))
        return
    # Wide enough for both tables even when output is piped (rich assumes 80 columns then).
    console = Console(width=max(Console().width, 120))
    settings = report["settings"]
    use = {
        "report": "report seeds, never used for tuning",
        "tune": "tuning seeds",
        "other": "neither the tuning (1-5) nor the report (101-103) seeds",
    }[seed_use(chosen)]
    console.print(
        f"seeds {', '.join(map(str, chosen))} ({use}); scenario {settings['scenario']}; "
        f"scored {settings['scoring']}",
        highlight=False,
    )
    console.print(_detection_table(report, points, weeks))
    console.print(_kinds_table(report))
    _print_ingest_lines(console, report)
    console.print(_books_table(report))
    mean = report["mean"]
    console.print(
        f"recall within the data: {_pct(mean.get('recall_within_data'))} "
        f"({mean.get('events_beyond_data', 0)} events beyond it, kept in recall above)",
        highlight=False,
    )
    for name, met in report["mean"]["targets"].items():
        console.print(f"{'[green]met[/]    ' if met else '[red]not met[/]'}  {name}")


def _first_day(start: str | None):
    """--start as the midnight in Jakarta that begins that day (None: the simulator's default)."""
    if not start:
        return None
    from datetime import date, datetime

    from pipeline.core.errors import UnusableInputError
    from pipeline.testbed.simulator import JAKARTA

    try:
        return datetime.combine(date.fromisoformat(start), datetime.min.time(), JAKARTA)
    except ValueError:
        raise UnusableInputError(f"--start {start!r} is not a date (YYYY-MM-DD)") from None


def _chosen_seeds(seed_set: str, seeds: int | None, first_seed: int | None) -> list[int]:
    from pipeline.core.errors import UnusableInputError
    from pipeline.testbed.evaluation import REPORT_SEEDS, TUNE_SEEDS

    if first_seed is not None:
        return list(range(first_seed, first_seed + (seeds or 3)))
    if seed_set not in ("report", "tune"):
        raise UnusableInputError(f"--seed-set {seed_set!r} is not 'report' or 'tune'")
    named = REPORT_SEEDS if seed_set == "report" else TUNE_SEEDS
    return list(named[: seeds or len(named)])


def _detection_table(report: dict, points: int, weeks: int):
    from rich.table import Table

    from pipeline.testbed.simulator import QUIET_KINDS

    mean = report["mean"]
    table = Table(title=f"Detection vs simulator labels ({points} points x {weeks} weeks)")
    headers = (
        "seed",
        "caught",
        "named",
        "recall",
        "prec",
        "FA/1k h",
        "flags h",
        "cases",
        "per event",
        "case prec",
        "high prec",
        *QUIET_KINDS,
        "warm-up",
    )
    for column in headers:
        table.add_column(column, justify="right")
    for run in report["runs"]:
        m = run["metrics"]
        table.add_row(
            str(run["seed"]),
            f"{m['caught']}/{m['events']}",
            str(m.get("kind_named", "")),
            _pct(m["recall"]),
            _pct(m["precision"]),
            _pct(m["false_alarms_per_1000"]),
            str(m["flagged_hours"]),
            str(m["cases"]),
            _pct(m.get("cases_per_event")),
            _pct(m["case_precision"]),
            _pct(m.get("high_precision")),
            *(str(m["quiet_flags"][k]) for k in QUIET_KINDS),
            str(m["warmup_flags"]),
        )
    table.add_row(
        "mean",
        "",
        "",
        _pct(mean["recall"]),
        _pct(mean["precision"]),
        _pct(mean["false_alarms_per_1000"]),
        "",
        "",
        _pct(mean.get("cases_per_event")),
        _pct(mean["case_precision"]),
        _pct(mean.get("high_precision")),
        *(_pct(mean["quiet_flags"][k]) for k in QUIET_KINDS),
        "",
        style="bold",
    )
    return table


def _kinds_table(report: dict):
    from rich.table import Table

    from pipeline.testbed.simulator import LEAKAGE_KINDS

    mean = report["mean"]
    kinds = Table(title="Events caught per kind")
    kinds.add_column("seed", justify="right")
    for kind in LEAKAGE_KINDS:
        kinds.add_column(kind.replace("_", " "), justify="right")
    for run in report["runs"]:
        m = run["metrics"]
        kinds.add_row(
            str(run["seed"]),
            *(
                f"{round(m['recall_by_kind'][k] * m['events_by_kind'][k])}/{m['events_by_kind'][k]}"
                if k in m["recall_by_kind"]
                else "-"
                for k in LEAKAGE_KINDS
            ),
        )
    kinds.add_row(
        "mean", *(_pct(mean["recall_by_kind"].get(k)) for k in LEAKAGE_KINDS), style="bold"
    )
    return kinds


def _print_ingest_lines(console, report: dict) -> None:
    for run in report["runs"]:
        ingest = run["ingest"]
        console.print(
            f"seed {run['seed']}: {ingest.get('rows_read', 0):,} rows read, "
            f"{ingest.get('accepted', 0):,} accepted, {ingest.get('quarantined', 0)} quarantined, "
            f"{ingest.get('duplicates', 0)} duplicates; {run['hours_scored']:,} point-hours "
            f"scored by {run.get('models', 1)} model(s), the last {run['model_version']}, "
            f"in {run['seconds']} s",
            highlight=False,
        )
        if run["metrics"]["missed"]:
            console.print("  missed: " + "; ".join(run["metrics"]["missed"]), highlight=False)
        if run["metrics"].get("beyond_data"):
            console.print(
                "  beyond the data (best possible reading under 3 noise units): "
                + "; ".join(run["metrics"]["beyond_data"]),
                highlight=False,
            )


def _books_table(report: dict):
    from rich.table import Table

    mean = report["mean"]
    books = Table(title="Reconciliation vs planted gaps (same regency)")
    for column in ("seed", "gaps found", "recall", "false gaps", "on clean periods"):
        books.add_column(column, justify="right")
    for run in report["runs"]:
        r = run["reconciliation"]
        books.add_row(
            str(run["seed"]),
            f"{r['found']}/{r['labelled']}",
            _pct(r["recall"]),
            str(r["false_gaps"]),
            f"{r['false_gaps_on_clean']} of {r['clean_periods']}",
        )
    books.add_row(
        "mean",
        "",
        _pct(mean["reconciliation"]["recall"]),
        str(mean["reconciliation"]["false_gaps"]),
        "",
        style="bold",
    )
    return books
