"""The demo: a simulated regency run through the real pipeline, end to end, on the embedded default.

simulate -> load points -> ingest every feed -> load announced closures -> backfill (aggregate,
train, score, cases) -> reconciliation books (returns, bank statement, collector deposits)
ingested and reconciled -> example yearly targets (a CSV written and loaded like a real one) ->
demo logins. Rerunning it is safe: ingestion recognises what it already
stored and backfill replaces its own results.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from pipeline.casework.cases import list_cases
from pipeline.casework.users import ensure_demo_users
from pipeline.detection.backfill import BackfillResult, backfill
from pipeline.intake.ingest import BatchResult, ingest_file
from pipeline.reconciliation.reconcile import ReconResult
from pipeline.reference.points import load_registry
from pipeline.reference.suppressions import load_closures
from pipeline.reference.targets import WHOLE_REGENCY, load_targets
from pipeline.review.queries import data_span, paid_revenue, region_tz
from pipeline.testbed.recon_simulator import reconcile_simulation
from pipeline.testbed.simulator import Manifest, simulate


@dataclass(frozen=True)
class DemoRun:
    manifest: Manifest
    batches: list[BatchResult]
    backfill: BackfillResult
    reconciliation: ReconResult
    cases: pd.DataFrame  # every case, largest estimated shortfall first
    logins: list[tuple[str, str, str]]  # (username, role, password)

    def totals(self) -> dict[str, int]:
        """Rows read / accepted / quarantined / duplicate over every feed file."""
        keys = ("rows_read", "accepted", "quarantined", "duplicates")
        return {key: sum(getattr(batch, key) for batch in self.batches) for key in keys}


def run_demo(
    engine: Engine,
    models_dir: Path,
    sample_dir: Path,
    *,
    points: int = 40,
    weeks: int = 8,
    seed: int = 7,
    progress: bool = False,
) -> DemoRun:
    """Simulate ``points`` collection points over ``weeks`` and run the whole pipeline on them."""
    manifest = simulate(sample_dir, points=points, weeks=weeks, seed=seed)
    load_registry(engine, manifest.points_csv)
    batches = [ingest_file(engine, feed, progress=progress) for feed in manifest.feeds]
    load_closures(engine, manifest.closures_csv)
    result = backfill(engine, models_dir, manifest.start, manifest.end, progress=progress)
    _, recon = reconcile_simulation(engine, sample_dir, sample_dir / "books", seed=seed)
    load_targets(engine, write_demo_targets(engine, sample_dir / "targets.csv"), actor="demo")
    cases = list_cases(engine).sort_values(["shortfall_rp", "score"], ascending=False)
    return DemoRun(manifest, batches, result, recon, cases, ensure_demo_users(engine))


# The demo's plan asks a little more than the simulated trade brings in (10% growth), so the
# leaders' page shows types behind and ahead of it; markets get a target per district.
DEMO_GROWTH = 1.10
PER_DISTRICT_TYPES = ("market",)


def write_demo_targets(engine: Engine, path: Path) -> Path:
    """A targets CSV for the year of the latest simulated day: each type's (or market district's)
    average revenue per simulated day, times the year's days and ``DEMO_GROWTH``, rounded to
    millions. Written as a file so the demo loads it as a regency would (``targets load``)."""
    with engine.connect() as connection:
        first, last = data_span(connection)
        rows = paid_revenue(
            connection, first, last + timedelta(hours=1), ("revenue_type", "district")
        )
    year = last.astimezone(region_tz()).year
    days = max((last - first) / timedelta(days=1), 1.0)
    per_day: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        district = r.district if r.revenue_type in PER_DISTRICT_TYPES else WHOLE_REGENCY
        per_day[(r.revenue_type, district)] += int(r.revenue_rp or 0) / days
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["year", "revenue_type", "district", "target_rp"])
        for (revenue_type, district), rp in sorted(per_day.items()):
            target = max(round(rp * 365 * DEMO_GROWTH / 1e6), 1) * 1_000_000
            writer.writerow([year, revenue_type, district, target])
    return path
