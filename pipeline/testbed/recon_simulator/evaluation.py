"""Reconciliation measured on simulated books: load them, reconcile, score the cases raised
against the planted gaps (recall per pattern; false gaps, on clean periods apart)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from pipeline.reconciliation.reconcile import ReconConfig
from pipeline.testbed.recon_simulator.books import ReconManifest, simulate_recon
from pipeline.testbed.recon_simulator.transactions import read_books


def load_books(engine, manifest: ReconManifest) -> None:
    """Points and transactions straight into the store, then the three reconciliation feeds
    through the real ingest path with its expectation suites."""
    from pipeline.reconciliation.feeds import ingest_feed

    load_transactions(engine, manifest)
    ingest_feed(engine, "returns", manifest.returns_csv)
    ingest_feed(engine, "bank", manifest.bank_csv)
    ingest_feed(engine, "collector", manifest.collector_csv)


def load_transactions(engine, manifest: ReconManifest) -> None:
    """The registry and the simulated transactions the books were built on, inserted directly
    (rows ingest would quarantine are left out, as ``read_books`` does); the transaction feed
    checks belong to, and are tested by, the ingest lane."""
    from sqlalchemy import insert

    from pipeline.reference.points import load_registry
    from pipeline.store.schema import ingest_batches, transactions

    load_registry(engine, manifest.points_csv)
    _, txns = read_books(manifest.points_csv, manifest.feeds)
    with engine.begin() as connection:
        batch_id = connection.execute(
            insert(ingest_batches).values(
                source="simulate_recon:direct",
                source_ref=", ".join(str(f) for f in manifest.feeds),
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
                status="ok",
                rows_read=len(txns),
                accepted=len(txns),
                quarantined=0,
                duplicates=0,
            )
        ).inserted_primary_key[0]
        rows = [
            {
                "point_id": point_id,
                "txn_id": txn_id,
                "occurred_at": occurred_at.to_pydatetime(),
                "amount": int(amount),
                "payment_method": method,
                "status": status,
                "operator_id": operator or None,
                "batch_id": batch_id,
            }
            for point_id, txn_id, occurred_at, amount, method, status, operator in zip(
                txns["point_id"],
                txns["txn_id"],
                txns["occurred_at"],
                txns["amount"],
                txns["payment_method"],
                txns["status"],
                txns["operator_id"],
                strict=True,
            )
        ]
        for first in range(0, len(rows), 5_000):
            connection.execute(insert(transactions), rows[first : first + 5_000])


def score_cases(engine, labels_csv: Path) -> dict:
    """Planted gaps found (same kind, same subject, overlapping span) and cases nothing explains."""
    import json

    from sqlalchemy import select

    from pipeline.store.schema import cases

    labels = pd.read_csv(labels_csv, dtype=str).to_dict("records")
    with engine.connect() as connection:
        raised = (
            connection.execute(select(cases).where(cases.c.origin == "reconciliation"))
            .mappings()
            .all()
        )
    found = []
    for case in raised:
        details = json.loads(case["details"])
        found.append(
            (case["kind"], details["subject"], details["period"]["from"], details["period"]["to"])
        )

    def overlaps(label, gap):
        return gap[2] <= label["end"] and gap[3] >= label["start"]

    labelled: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    explained: set[int] = set()
    for label in labels:
        if label["pattern"] == "clean":
            continue
        labelled[label["pattern"]] += 1
        matches = [
            i
            for i, gap in enumerate(found)
            if gap[0] == label["pattern"] and gap[1] == label["subject"] and overlaps(label, gap)
        ]
        hits[label["pattern"]] += bool(matches)
        explained.update(matches)
    clean = [label for label in labels if label["pattern"] == "clean"]
    false_gaps = [found[i] for i in range(len(found)) if i not in explained]
    on_clean = [
        gap for gap in false_gaps if any(gap[1] == c["subject"] and overlaps(c, gap) for c in clean)
    ]
    return {
        "labelled": dict(labelled),
        "found": dict(hits),
        "clean_periods": len(clean),
        "false_gaps": len(false_gaps),
        "false_gaps_on_clean": len(on_clean),
        "false_gap_examples": [list(g) for g in false_gaps[:5]],
        "cases": len(found),
    }


def evaluate_reconciliation(
    work_dir: Path,
    *,
    seeds: tuple[int, ...] = (7, 8),
    config: ReconConfig | None = None,
    days: int = 59,
    sim_dir: Path | None = None,
) -> dict:
    """Simulate books with planted gaps for each seed, reconcile them, and score the cases:
    recall per pattern, and false gaps (cases no planted gap explains; on clean periods apart).

    Books are built on ``sim_dir`` (the simulator's points.csv + feeds/) when given, else on a
    small transaction set of their own (``days`` long)."""
    from pipeline.reconciliation.reconcile import reconcile
    from pipeline.store import connect

    config = config or ReconConfig()
    totals: dict[str, dict[str, int]] = {"labelled": defaultdict(int), "found": defaultdict(int)}
    per_seed, false_gaps, on_clean, clean_periods, examples = [], 0, 0, 0, []
    for seed in seeds:
        out = Path(work_dir) / f"seed{seed}"
        manifest = simulate_recon(out, sim_dir=sim_dir, seed=seed, days=days, config=config)
        db = out / "recon-eval.db"
        db.unlink(missing_ok=True)
        engine = connect(f"sqlite:///{db}")
        try:
            load_books(engine, manifest)
            # Everything is long overdue by as_of: a clean book must still raise nothing.
            horizon = manifest.end + timedelta(days=70)
            reconcile(
                engine, manifest.start, horizon, as_of=horizon + timedelta(days=30), config=config
            )
            scored = score_cases(engine, manifest.labels_csv)
        finally:
            engine.dispose()
        per_seed.append({"seed": seed, **scored})
        for key in ("labelled", "found"):
            for pattern, n in scored[key].items():
                totals[key][pattern] += n
        false_gaps += scored["false_gaps"]
        on_clean += scored["false_gaps_on_clean"]
        clean_periods += scored["clean_periods"]
        examples += scored["false_gap_examples"]
    recall = {
        p: round(totals["found"][p] / n, 3) for p, n in sorted(totals["labelled"].items()) if n
    }
    return {
        "seeds": list(seeds),
        "recall": recall,
        "labelled": dict(totals["labelled"]),
        "found": dict(totals["found"]),
        "overall_recall": round(
            sum(totals["found"].values()) / max(1, sum(totals["labelled"].values())), 3
        ),
        "false_gaps": false_gaps,
        "false_gaps_on_clean": on_clean,
        "clean_periods": clean_periods,
        "false_gap_examples": examples[:5],
        "per_seed": per_seed,
    }


def reconcile_simulation(
    engine, sim_dir: Path, out_dir: Path, *, seed: int = 7, config: ReconConfig | None = None
):
    """For the demo: books on the simulator's output (whose transactions ``engine`` already
    holds), the three feeds ingested, and the whole span reconciled as of a day when all of it
    is overdue. Returns (manifest, ReconResult)."""
    from pipeline.reconciliation.feeds import ingest_feed
    from pipeline.reconciliation.reconcile import reconcile

    manifest = simulate_recon(out_dir, sim_dir=sim_dir, seed=seed, config=config)
    ingest_feed(engine, "returns", manifest.returns_csv)
    ingest_feed(engine, "bank", manifest.bank_csv)
    ingest_feed(engine, "collector", manifest.collector_csv)
    horizon = manifest.end + timedelta(days=70)
    result = reconcile(
        engine, manifest.start, horizon, as_of=horizon + timedelta(days=30), config=config
    )
    return manifest, result
