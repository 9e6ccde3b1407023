"""Commands for the simulator and the evaluation harness."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli import app


@app.command("simulate")
def simulate_cmd(
    out: Path = typer.Option(None, "--out", help="Output folder [default: $EINCOME_HOME/sample]."),
    points: int = typer.Option(40, "--points", help="Collection points to simulate."),
    weeks: int = typer.Option(8, "--weeks", help="Weeks of trade (the first 4 are clean)."),
    days: int = typer.Option(None, "--days", help="Days of trade; overrides --weeks."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed writes the same files."),
    split: str = typer.Option(
        "day", "--split", help="Feed files per 'day', per 'week', or 'none'."
    ),
    volume: float = typer.Option(1.0, "--volume", help="Scale every point's trade by this."),
    leakage: bool = typer.Option(True, "--leakage/--no-leakage", help="Plant labelled leakage."),
    bad_rows: bool = typer.Option(
        True, "--bad-rows/--no-bad-rows", help="Add rows validation must reject."
    ),
) -> None:
    """Write sample feeds, a point registry, leakage labels, closures and a calendar."""
    from pipeline.settings import Settings
    from pipeline.simulate import simulate

    out = out or Settings.from_env().home / "sample"
    manifest = simulate(
        out,
        points=points,
        weeks=weeks,
        days=days,
        seed=seed,
        split=split,
        volume=volume,
        leakage=leakage,
        bad_rows=bad_rows,
    )
    planted = ", ".join(f"{kind} {count}" for kind, count in manifest.events.items())
    typer.echo(
        f"{manifest.points} points, {manifest.rows} feed rows in {len(manifest.feeds)} files "
        f"({sum(manifest.bad_rows.values())} bad) under {out}\n"
        f"window {manifest.start.isoformat()} .. {manifest.end.isoformat()}\n"
        f"labels: {planted}"
    )
