"""Smoke test: the benchmark runs end to end at a tiny size and writes its figures."""

from __future__ import annotations

import json

import pytest

from pipeline.testbed import bench


@pytest.mark.slow
def test_quick_bench_writes_every_stage(tmp_path):
    bench.main(
        ["--quick", "--rows", "4000", "--points", "10", "--db", "sqlite", "--out", str(tmp_path)]
    )
    report = json.loads((tmp_path / "bench.json").read_text())
    by_stage = {(r["stage"], r["db"]): r for r in report["results"]}
    for key in (
        ("parse", "-"),
        ("floor", "-"),
        ("validate", "-"),
        ("ingest", "sqlite"),
        ("naive", "sqlite"),
    ):
        assert "error" not in by_stage[key], by_stage[key]
        assert by_stage[key]["rows"] == report["feed"]["rows"] > 500
    ingest = by_stage[("ingest", "sqlite")]
    assert ingest["accepted"] + ingest["quarantined"] + ingest["duplicates"] == ingest["rows"]
    assert ingest["x_floor"] > 0 and ingest["peak_mib"] > 0
    assert "not measured" in by_stage[("backfill", "-")]["error"]


@pytest.mark.slow
def test_a_stage_runs_in_its_own_process_through_python_m(tmp_path):
    """The full bench runs each stage as ``python -m pipeline.testbed.bench --stage``; --quick
    runs them in process, so this pins the child path (the package's __main__.py)."""
    from pipeline.testbed.bench.run import _run_stage

    feed = bench.generate_feed(tmp_path, 1500, 5, quick=True)
    params = {"feed": feed["feed"], "chunk_rows": 500}
    result = _run_stage("parse", params, timeout=300)
    assert "error" not in result, result
    assert result["rows"] == feed["rows"] and result["peak_mib"] > 0
    assert result["process_seconds"] >= result["seconds"]
