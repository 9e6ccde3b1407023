"""Reconciliation feeds: validated against their suites, bad rows quarantined, nothing twice."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest
from sqlalchemy import select

from pipeline.core.errors import UnusableInputError
from pipeline.intake.validate import suite_path
from pipeline.reconciliation.feeds import FEEDS, ingest_feed, parse_rupiah
from pipeline.store.schema import (
    bank_deposits,
    collector_deposits,
    ingest_batches,
    quarantine,
    tax_returns,
)
from tests.helpers.recon_books import Books


def _rows(engine, table):
    with engine.connect() as connection:
        return connection.execute(select(table)).mappings().all()


def _quarantine(engine, batch_id):
    with engine.connect() as connection:
        return (
            connection.execute(
                select(quarantine)
                .where(quarantine.c.batch_id == batch_id)
                .order_by(quarantine.c.line_no)
            )
            .mappings()
            .all()
        )


def test_every_suite_the_pipeline_names_is_checked_in():
    for spec in FEEDS.values():
        suite = json.loads(suite_path(spec.suite).read_text())
        assert suite["expectations"], spec.suite
        for expectation in suite["expectations"]:
            assert expectation["meta"]["reason"], expectation


@pytest.mark.parametrize(
    "text,value",
    [("1250000", 1_250_000), ("1.250.000,00", 1_250_000), ("1,250,000.00", 1_250_000), ("0", 0)],
)
def test_parse_rupiah_bank_styles(text, value):
    assert parse_rupiah(text) == value


def test_returns_quarantine_bad_rows_and_dedupe(engine, tmp_path):
    Books(engine).point("R1", "restaurant_tax").point("R2", "hotel_tax")
    feed = tmp_path / "returns.csv"
    feed.write_text(
        "point_id,period_start,period_end,declared_sales,tax_due,filed_at,return_ref\n"
        "R1,2026-03-01,2026-03-31,10000000,1000000,2026-04-05T09:00:00+07:00,SPTPD-1\n"
        "R2,2026-03-01,2026-03-31,20.000.000,2.000.000,,\n"
        "R9,2026-03-01,2026-03-31,1000,100,,\n"  # unknown point
        "R1,2026-02-01,2026-02-28,-5000,0,,\n"  # negative
        "R2,2026-02-30,2026-03-31,1000,100,,\n"  # no such date
        "R2,2026-04-01,2026-03-31,1000,100,,\n"  # ends before it starts
        "R1,2026-01-01,2026-01-31,1000,5000,,\n"  # tax above sales
        ",2026-01-01,2026-01-31,,100,,\n"  # point and sales missing
    )
    result = ingest_feed(engine, "returns", feed)
    assert (result.rows_read, result.accepted, result.quarantined, result.duplicates) == (
        8,
        2,
        6,
        0,
    )
    reasons = [q["reasons"] for q in _quarantine(engine, result.batch_id)]
    assert "point_id 'R9' is not in the point registry" in reasons[0]
    assert "declared_sales '-5000' is not a whole, non-negative rupiah amount" in reasons[1]
    assert "period_start '2026-02-30' is not a calendar date" in reasons[2]
    assert "period_end 2026-03-31 is before period_start 2026-04-01" in reasons[3]
    assert "tax_due 5000 exceeds declared_sales 1000" in reasons[4]
    assert "point_id is missing" in reasons[5] and "declared_sales is missing" in reasons[5]
    stored = {r["point_id"]: r for r in _rows(engine, tax_returns)}
    assert stored["R2"]["declared_sales"] == 20_000_000 and stored["R2"]["tax_due"] == 2_000_000
    assert stored["R1"]["period_start"] == date(2026, 3, 1)

    again = ingest_feed(engine, "returns", feed)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 2, 6)
    # A resent return with different figures is a conflict, not a silent overwrite.
    changed = tmp_path / "amended.csv"
    changed.write_text(
        "point_id,period_start,period_end,declared_sales,tax_due\n"
        "R1,2026-03-01,2026-03-31,12000000,1200000\n"
    )
    conflict = ingest_feed(engine, "returns", changed)
    (row,) = _quarantine(engine, conflict.batch_id)
    assert row["kind"] == "conflict" and "already received" in row["reasons"]
    with engine.connect() as connection:
        batch = (
            connection.execute(
                select(ingest_batches).where(ingest_batches.c.batch_id == result.batch_id)
            )
            .mappings()
            .one()
        )
    assert batch["status"] == "ok" and batch["source"] == "recon:returns"
    assert batch["accepted"] + batch["quarantined"] + batch["duplicates"] == batch["rows_read"]


def test_bank_statement_as_exported_in_indonesian(engine, tmp_path):
    Books(engine).point("R1", "restaurant_tax")
    feed = tmp_path / "rekening.csv.gz"
    text = (
        "Tanggal,Keterangan,Debet,Kredit,Saldo,point_id,collector_id,Kanal\n"
        "10/04/2026,SSPD R1 2026-03,,1.000.000,00,5.000.000,00,R1,,va\n"
        "10/04/2026,BIAYA ADM,6.500,00,,4.993.500,00,,,other\n"
        "10/04/2026,SETORAN TUNAI,,250.000,5.243.500,,C1,cash_collector\n"
        "11/04/2026,SETORAN TUNAI,,250.000,5.493.500,,C1,cash_collector\n"
        "32/04/2026,RUSAK,,1000,1,,,va\n"
        "12/04/2026,DUA SISI,100,1000,1,,,va\n"
        "12/04/2026,KANAL ANEH,,1000,1,,,pigeon\n"
    )
    # Indonesian decimal commas inside unquoted CSV would split columns: banks quote them.
    text = text.replace("1.000.000,00", '"1.000.000,00"').replace("5.000.000,00", '"5.000.000,00"')
    text = text.replace("6.500,00", '"6.500,00"').replace("4.993.500,00", '"4.993.500,00"')
    feed.write_bytes(gzip.compress(text.encode()))
    result = ingest_feed(engine, "bank", feed)
    assert (result.rows_read, result.accepted, result.quarantined) == (7, 4, 3)
    lines = sorted(_rows(engine, bank_deposits), key=lambda r: (r["booked_on"], r["amount"]))
    assert [r["amount"] for r in lines] == [-6_500, 250_000, 1_000_000, 250_000]
    assert lines[2]["point_id"] == "R1" and lines[2]["booked_on"] == date(2026, 4, 10)
    assert len({r["line_id"] for r in lines}) == 4  # derived ids keep equal payments apart
    reasons = [q["reasons"] for q in _quarantine(engine, result.batch_id)]
    assert "booked_on '32/04/2026' is not a calendar date" in reasons[0]
    assert "exactly one of debit" in reasons[1]
    assert "channel 'pigeon'" in reasons[2]
    assert ingest_feed(engine, "bank", feed).duplicates == 4


def test_bank_statement_with_semicolons_as_spreadsheets_export_it(sqlite_url, tmp_path):
    from pipeline.store import connect

    engine = connect(sqlite_url)
    feed = tmp_path / "mutasi.csv"
    feed.write_text(
        "Tanggal;Keterangan;Debet;Kredit;Saldo\n"
        "02/03/2026;SETORAN TUNAI;;1.250.000,00;9.250.000,00\n"
        "02/03/2026;BIAYA TRANSFER;6.500,00;;9.243.500,00\n"
    )
    result = ingest_feed(engine, "bank", feed)
    assert (result.accepted, result.quarantined) == (2, 0)
    amounts = sorted(r["amount"] for r in _rows(engine, bank_deposits))
    assert amounts == [-6_500, 1_250_000]
    engine.dispose()


def test_collector_deposits_and_thousands_of_bad_rows(sqlite_url, tmp_path):
    from pipeline.store import connect

    engine = connect(sqlite_url)
    Books(engine).point("K1", "parking")
    lines = ["collector_id,day,cash_amount,deposited_on,point_id"]
    lines += [f"C{i},2026-03-02,{100_000 + i},2026-03-02,K1" for i in range(50)]
    lines += [f"C{i},2026-03-02,-{i},2026-03-01,K1" for i in range(50, 2550)]  # 2500 bad rows
    lines += ["C1,2026-03-03,5000,2026-03-02,K1", "C2,2026-03-03,5000,,KX"]
    feed = tmp_path / "setoran.csv"
    feed.write_text("\n".join(lines) + "\n")
    result = ingest_feed(engine, "collector", feed)
    assert (result.accepted, result.quarantined) == (50, 2502)
    assert len(_quarantine(engine, result.batch_id)) == 2502  # every row, not GX's first 200
    tail = _quarantine(engine, result.batch_id)[-2:]
    assert "deposited_on 2026-03-02 is before the collection day 2026-03-03" in tail[0]["reasons"]
    assert "point_id 'KX' is not in the point registry" in tail[1]["reasons"]
    stored = {r["collector_id"]: r for r in _rows(engine, collector_deposits)}
    assert stored["C7"]["cash_amount"] == 100_007 and stored["C7"]["point_id"] == "K1"
    engine.dispose()


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b"foo,bar\n1,2\n", "missing column"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a CSV"),
    ],
)
def test_not_a_feed_is_rejected_and_recorded(sqlite_url, tmp_path, content, message):
    from pipeline.store import connect

    engine = connect(sqlite_url)
    feed = tmp_path / "junk.csv"
    feed.write_bytes(content)
    with pytest.raises(UnusableInputError, match=message):
        ingest_feed(engine, "returns", feed)
    (batch,) = _rows(engine, ingest_batches)
    assert batch["status"] == "rejected" and message in batch["message"]
    engine.dispose()


def test_unknown_feed_kind(sqlite_url, tmp_path):
    from pipeline.store import connect

    with pytest.raises(UnusableInputError, match="not one of returns, bank, collector"):
        ingest_feed(connect(sqlite_url), "ledger", tmp_path / "x.csv")
