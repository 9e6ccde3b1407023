"""The demo: a simulated regency run through the real pipeline, end to end, on the embedded default.

simulate -> load points -> ingest every feed -> load announced closures -> backfill (aggregate,
train, score, cases) -> reconciliation books (returns, bank statement, collector deposits)
ingested and reconciled -> demo logins. Rerunning it is safe: ingestion recognises what it already
stored and backfill replaces its own results.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    cases = list_cases(engine).sort_values(["shortfall_rp", "score"], ascending=False)
    return DemoRun(manifest, batches, result, recon, cases, ensure_demo_users(engine))
