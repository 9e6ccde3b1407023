"""One simulation end to end: check the arguments, draw the regency, plant, write, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from pipeline.core.errors import UnusableInputError
from pipeline.core.leakage_kinds import LEAKAGE_KINDS
from pipeline.testbed.simulator.planting import _Planter
from pipeline.testbed.simulator.profiles import DEFAULT_START, JAKARTA, SCENARIOS
from pipeline.testbed.simulator.regency import _Simulation
from pipeline.testbed.simulator.writer import _Writer, write_feeds, write_tables


@dataclass(frozen=True)
class Manifest:
    """What one simulation wrote and how much of each."""

    out_dir: Path
    points_csv: Path
    labels_csv: Path
    closures_csv: Path
    calendar_csv: Path
    feeds: list[Path]
    start: datetime  # first local midnight, aware
    end: datetime  # exclusive
    clean_until: datetime  # no leakage before this: the history a detector learns "usual" from
    seed: int
    points: int
    transactions: int  # clean rows written (all statuses), bad rows excluded
    bad_rows: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # label kind -> events planted
    scenario: str = "varied"

    @property
    def rows(self) -> int:
        """Every data row in the feed files, bad rows included."""
        return self.transactions + sum(self.bad_rows.values())


def simulate(
    out_dir: Path,
    *,
    points: int = 40,
    weeks: int = 8,
    days: int | None = None,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    leakage: bool = True,
    bad_rows: bool = True,
    split: str = "day",
    volume: float = 1.0,
    target_rows: int | None = None,
    scenario: str = "varied",
) -> Manifest:
    """Write a simulated regency into ``out_dir`` and return what was written.

    ``days`` overrides ``weeks``. ``split`` is "day" (feeds/day-YYYY-MM-DD.csv), "week"
    (feeds/week-YYYY-MM-DD.csv, named by the Monday) or "none" (one feeds/all.csv).
    ``volume`` scales every point's trade (at 1.0 a point averages ~110 transactions a day);
    ``target_rows`` instead scales it so the feeds hold about that many rows (within a few %),
    e.g. 1,000 points x 365 days x ``target_rows=5_000_000`` for a benchmark. Deterministic
    for a seed. ``scenario`` "varied" (default) adds what an independent generator had: sizes
    far apart with tiny points, rotating shifts, slow drifts, local dips at single points, a
    regional day off the calendar does not know, short skimming, and under-reporting that runs
    to the end of the data (one from a public holiday, one creeping in); "classic" writes
    exactly what the simulator wrote before them.
    """
    days = days if days is not None else weeks * 7
    _check_arguments(start, points, days, split, volume)
    if scenario not in SCENARIOS:
        raise UnusableInputError(
            f"simulate scenario {scenario!r} is not one of {', '.join(SCENARIOS)}"
        )
    local = start.astimezone(JAKARTA)
    start_local = datetime(local.year, local.month, local.day, tzinfo=JAKARTA)

    out_dir = Path(out_dir)
    feeds_dir = out_dir / "feeds"
    feeds_dir.mkdir(parents=True, exist_ok=True)
    for old in feeds_dir.glob("*.csv"):
        old.unlink()

    sim = _Simulation(
        points=points,
        days=days,
        seed=seed,
        start=start_local,
        leakage=leakage,
        volume=volume,
        target_rows=target_rows,
        scenario=scenario,
    )
    factor = sim.plan_calendar()
    frame = _Planter(sim, sim.generate(factor)).plant()
    writer = _Writer(sim, frame)
    bad, bad_counts = writer.bad_lines() if bad_rows else ([], {})
    feeds = write_feeds(writer, feeds_dir, split, bad)
    points_csv, labels_csv, closures_csv, calendar_csv = write_tables(out_dir, sim)
    return Manifest(
        out_dir=out_dir,
        points_csv=points_csv,
        labels_csv=labels_csv,
        closures_csv=closures_csv,
        calendar_csv=calendar_csv,
        feeds=feeds,
        start=start_local,
        end=start_local + timedelta(days=days),
        clean_until=start_local + timedelta(days=sim.clean_days),
        seed=seed,
        points=points,
        transactions=len(writer),
        bad_rows=bad_counts,
        events=_event_counts(sim),
        scenario=scenario,
    )


def _check_arguments(start: datetime, points: int, days: int, split: str, volume: float) -> None:
    if start.tzinfo is None:
        raise UnusableInputError(
            f"simulate start {start.isoformat()} has no timezone; give an offset"
        )
    if points < 1:
        raise UnusableInputError(f"simulate points={points}: need at least one point")
    if days < 1:
        raise UnusableInputError(f"simulate days={days}: need at least one day")
    if split not in ("day", "week", "none"):
        raise UnusableInputError(f"simulate split {split!r} is not one of day, week, none")
    if volume <= 0:
        raise UnusableInputError(f"simulate volume={volume}: must be above zero")


def _event_counts(sim: _Simulation) -> dict[str, int]:
    """Label kind -> events planted (a holiday or a rain spell counts once, not per point)."""
    events: dict[str, int] = {}
    for row in sim.labels:
        if row["kind"] in LEAKAGE_KINDS or row["kind"] in ("closure", "dip"):
            events[row["kind"]] = events.get(row["kind"], 0) + 1
    events["holiday"] = sum(1 for c in sim.calendar if c["kind"] == "holiday")
    events["rain"] = sum(1 for c in sim.calendar if c["kind"] == "rain")
    regional = {row["start_utc"] for row in sim.labels if row["kind"] == "regional"}
    if regional:
        events["regional"] = len(regional)
    return events


def read_labels(path: Path) -> pd.DataFrame:
    """labels.csv with aware UTC start/end times and ``detectability`` as a number (NaN where
    blank)."""
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    labels["start_utc"] = pd.to_datetime(labels["start_utc"], utc=True)
    labels["end_utc"] = pd.to_datetime(labels["end_utc"], utc=True)
    if "detectability" in labels.columns:  # blank where the planter does not assess it
        labels["detectability"] = pd.to_numeric(labels["detectability"], errors="coerce")
    return labels
