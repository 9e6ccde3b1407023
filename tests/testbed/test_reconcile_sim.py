"""Reconciliation end to end on simulated books: planted gaps found, clean periods quiet; the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.core.errors import UnusableInputError
from pipeline.reconciliation.reconcile import reconcile
from pipeline.store.schema import cases
from pipeline.testbed.recon_simulator import (
    PATTERNS,
    load_books,
    score_cases,
    simulate_recon,
)


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """One simulated month and a bit (enough for a 21-day flat 'setoran' run), seed 7."""
    return simulate_recon(tmp_path_factory.mktemp("recon") / "books", seed=7, days=35)


def test_simulated_books_carry_every_pattern_and_clean_periods(books):
    labels = pd.read_csv(books.labels_csv)
    assert set(PATTERNS) <= set(labels["pattern"])
    assert (labels["pattern"] == "clean").sum() >= 5
    statement = pd.read_csv(books.bank_csv)
    assert list(statement.columns[:7]) == [
        "line_id", "booked_on", "value_date", "description", "debit", "credit", "balance",
    ]  # fmt: skip
    assert statement["line_id"].is_unique


@pytest.mark.slow
def test_planted_gaps_found_and_clean_periods_quiet(engine, books):
    load_books(engine, books)
    horizon = books.end + timedelta(days=70)
    first = reconcile(engine, books.start, horizon, as_of=horizon + timedelta(days=30))
    scored = score_cases(engine, books.labels_csv)
    for pattern, labelled in scored["labelled"].items():
        assert scored["found"].get(pattern, 0) / labelled >= 0.9, (pattern, scored)
    assert scored["false_gaps"] == 0, scored["false_gap_examples"]
    # Rerun: nothing new; an auditor's decision survives it.
    with engine.begin() as connection:
        decided = connection.execute(select(cases.c.case_id).limit(1)).scalar()
        connection.execute(
            update(cases).where(cases.c.case_id == decided).values(status="false_alarm")
        )
    again = reconcile(engine, books.start, horizon, as_of=horizon + timedelta(days=30))
    assert again.cases_created == 0 and again.cases_cleared == 0
    with engine.connect() as connection:
        assert connection.execute(select(cases.c.case_id)).all().__len__() == first.cases_created
        status = connection.execute(
            select(cases.c.status).where(cases.c.case_id == decided)
        ).scalar()
    assert status == "false_alarm"


@pytest.mark.slow
def test_cli_ingest_reconcile_and_print_gaps(books, tmp_path):
    from pipeline.reference.points import load_registry
    from pipeline.runtime import runtime_from_env

    env = {"EINCOME_HOME": str(tmp_path), "EINCOME_DB_URL": "", "EINCOME_RECON_CONFIG": ""}
    runner = CliRunner()
    engine = runtime_from_env(home=tmp_path, db_url="").engine
    load_registry(engine, books.points_csv)
    # The whole flow through the commands: transactions via the ingest lane's `eincome ingest`.
    done = runner.invoke(app, ["ingest", *map(str, books.feeds)], env=env)
    assert done.exit_code == 0, done.output
    for kind, path in (
        ("returns", books.returns_csv),
        ("bank", books.bank_csv),
        ("collector", books.collector_csv),
    ):
        done = runner.invoke(app, ["recon", "ingest", "--kind", kind, str(path), "--json"], env=env)
        assert done.exit_code == 0, done.output
        counts = json.loads(done.output)
        assert counts["quarantined"] == 0 and counts["accepted"] == counts["rows_read"]
    month = f"{books.start:%Y-%m}"
    args = ["reconcile", "--period", month, "--as-of", "2026-12-31", "--format", "json"]
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    gaps = [json.loads(line) for line in done.output.splitlines()]
    assert {"flat_deposits", "unmatched_deposit"} <= {g["kind"] for g in gaps}
    assert all(
        {"recorded_rp", "declared_rp", "deposited_rp", "difference_rp"} <= set(g) for g in gaps
    )
    table = runner.invoke(app, ["reconcile", "--period", month, "--as-of", "2026-12-31"], env=env)
    assert "kasus: 0 baru, 0 diperbarui" in table.output
    as_csv = runner.invoke(app, [*args[:-1], "csv", "--dry-run"], env=env)
    assert as_csv.output.splitlines()[0].startswith("kind,subject,point_id,from,to,recorded_rp")
    assert len(as_csv.output.splitlines()) == len(gaps) + 1
    bad = runner.invoke(app, ["reconcile", "--period", "March"], env=env)
    assert isinstance(bad.exception, UnusableInputError) and "YYYY-MM" in str(bad.exception)
    shown = runner.invoke(app, ["recon", "config"], env=env)
    assert "allowed_days_late = 1" in shown.output
