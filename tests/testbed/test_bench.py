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
