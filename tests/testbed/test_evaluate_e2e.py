"""The whole pipeline on a small simulated regency, measured by `eincome evaluate --json`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

# Measured in sample (hindsight) on main: recall 5/6, precision 0.91. Out of sample (the
# walk-forward backfill, issue 13) the same regency gives recall 3/6 (device off, under-reporting
# and split transactions missed: the first week scored after four weeks of history), precision
# 0.88. The floor is that measurement, without slack: raise it as detection improves, never
# lower it to pass.
FLOOR_RECALL = 3 / 6
FLOOR_PRECISION = 0.6


@pytest.mark.slow
def test_real_pipeline_on_a_small_regency_meets_a_quality_floor(tmp_path):
    # 6 weeks from Monday 2025-11-17 end on 2025-12-28: Christmas falls in the scored 2 weeks.
    args = ["evaluate", "--seeds", "1", "--first-seed", "11", "--points", "12", "--weeks", "6"]
    args += ["--scenario", "classic"]  # one event of each kind; out of sample (walk-forward)
    result = CliRunner().invoke(
        app, [*args, "--start", "2025-11-17", "--keep", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    run = report["runs"][0]
    m, ingest = run["metrics"], run["ingest"]
    # Nothing lost, nothing twice; the 7 planted bad rows are all held back.
    assert ingest["rows_read"] == ingest["accepted"] + ingest["quarantined"] + ingest["duplicates"]
    assert ingest["quarantined"] + ingest["duplicates"] == 7
    assert m["events"] == 6  # one of each kind
    assert m["normal_hours"] > 1000 and run["hours_scored"] > 0
    summary = json.dumps(m)
    # A floor, not the issue targets: it fails when detection or the harness breaks.
    assert m["recall"] >= FLOOR_RECALL, summary
    assert m["precision"] is not None and m["precision"] >= FLOOR_PRECISION, summary
    assert m["quiet_flags"]["closure"] == 0, summary  # closures are suppressed
    assert m["quiet_flags"]["holiday"] <= 3, summary
    assert report["mean"]["recall"] == m["recall"]
    # Reconciliation on the same regency's books: issue 7's targets hold on this seed too.
    books = run["reconciliation"]
    assert books["labelled"] > 0 and books["recall"] >= 0.9, books
    assert books["false_gaps_on_clean"] == 0, books
    # --keep leaves the run to inspect: the simulation and the database it was scored in.
    assert (tmp_path / "seed-11" / "eval.db").exists()
    assert (tmp_path / "seed-11" / "sim" / "labels.csv").exists()
