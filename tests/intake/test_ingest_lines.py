"""Every physical line accounted for (issue 14's table), on real SQLite and PostgreSQL.

Each test is named after a failure it pins: files of good rows with one bad line, ingested,
then the database read back.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from pipeline.intake.ingest import ingest_file, quarantine_reasons
from pipeline.store.schema import ingest_batches, quarantine, transactions
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def row(i: int) -> str:
    return f"T{i},P1,2026-03-01T10:{i % 60:02d}:00+07:00,{1000 + i},cash,paid,op{i % 3}\n"


def rows(start: int, stop: int) -> str:
    return "".join(row(i) for i in range(start, stop))


def stored(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def batch(engine, batch_id: int):
    with engine.connect() as connection:
        return connection.execute(
            select(ingest_batches).where(ingest_batches.c.batch_id == batch_id)
        ).one()


def balanced(engine, result) -> None:
    """The batch row adds up: records, and the file's physical lines."""
    b = batch(engine, result.batch_id)
    assert b.accepted + b.quarantined + b.duplicates == b.rows_read
    assert b.lines_read == result.lines_read
    assert stored(engine, transactions) == b.accepted


@pytest.mark.parametrize("position", [0, 50, 2_345])
def test_one_row_with_an_extra_field_no_longer_rejects_the_whole_file(engine, tmp_path, position):
    # Was: "malformed CSV near data line ...": 0 accepted. At position 0 pandas took the first
    # column for an index and all 101 rows were quarantined.
    register(engine, "P1")
    n = 5_000 if position > 100 else 100
    body = rows(0, position) + row(position).rstrip("\n") + ",surplus\n" + rows(position + 1, n + 1)
    path = tmp_path / "extra.csv"
    path.write_text(HEADER + body)
    result = ingest_file(engine, path, now=NOW, chunk_rows=1_000)
    assert (result.rows_read, result.accepted, result.quarantined) == (n + 1, n, 1)
    assert result.lines_read == n + 2
    (bad,) = quarantine_reasons(engine, result.batch_id)
    assert bad["line_no"] == position + 2 and bad["kind"] == "malformed"
    assert bad["reasons"] == "the line has 8 fields; the header has 7"
    assert bad["raw"]["line"].endswith(",surplus")
    balanced(engine, result)


def test_an_unclosed_quote_no_longer_swallows_the_lines_after_it(engine, tmp_path):
    # Was: rows_read 76 of 101, 25 lines swallowed into one field, the batch still "balanced".
    register(engine, "P1")
    broken = 'T50,P1,"2026-03-01T10:50:00+07:00,1050,cash,paid,op2\n'
    later_quoted = 'T75,P1,"2026-03-01T10:15:00+07:00",1075,cash,paid,op0\n'
    body = rows(0, 50) + broken + rows(51, 75) + later_quoted + rows(76, 101)
    path = tmp_path / "quote.csv"
    path.write_text(HEADER + body)
    result = ingest_file(engine, path, now=NOW)
    assert (result.rows_read, result.accepted, result.quarantined) == (101, 100, 1)
    assert result.lines_read == 102
    (bad,) = quarantine_reasons(engine, result.batch_id)
    assert bad["line_no"] == 52 and "quoted field that is not closed" in bad["reasons"]
    balanced(engine, result)


def test_a_quoted_newline_is_one_record_and_later_line_numbers_still_match_the_file(
    engine, tmp_path
):
    # Was: quarantine line numbers counted parsed records, so they drifted after blank lines
    # and quoted newlines.
    register(engine, "P1")
    multi = 'T1,P1,2026-03-01T10:01:00+07:00,1001,cash,paid,"op\nsecond line"\n'
    bad = "B1,P1,2026-03-01T10:00:00+07:00,-5,cash,paid,op1\n"
    path = tmp_path / "multi.csv"
    path.write_text(HEADER + row(0) + multi + "\n\n" + row(2) + bad)
    result = ingest_file(engine, path, now=NOW)
    assert (result.rows_read, result.accepted, result.quarantined) == (4, 3, 1)
    assert result.lines_read == 8
    (q,) = quarantine_reasons(engine, result.batch_id)
    assert q["line_no"] == 8 and q["reasons"] == 'amount "-5" is negative'
    with engine.connect() as connection:
        operator = connection.execute(
            select(transactions.c.operator_id).where(transactions.c.txn_id == "T1")
        ).scalar_one()
    assert operator == "op\nsecond line"
    balanced(engine, result)


def test_a_nul_byte_after_the_first_64_kib_is_quarantined_on_both_databases(engine, tmp_path):
    # Was: stored on SQLite, a traceback on PostgreSQL.
    register(engine, "P1")
    path = tmp_path / "nul.csv"
    path.write_bytes(
        (HEADER + rows(0, 2_000)).encode()
        + b"T9000,P1,2026-03-01T10:00:00+07:00,1000,cash,pa\x00id,op1\n"
        + rows(2_000, 2_100).encode()
    )
    assert path.stat().st_size > 64 * 1024
    result = ingest_file(engine, path, now=NOW)
    assert (result.rows_read, result.accepted, result.quarantined) == (2_101, 2_100, 1)
    (bad,) = quarantine_reasons(engine, result.batch_id)
    assert bad["line_no"] == 2_002 and bad["reasons"] == "the line holds a NUL byte"
    balanced(engine, result)


def test_a_gzip_cut_at_70_percent_keeps_the_readable_rows_and_reports_the_rest(engine, tmp_path):
    # Was: the whole file rejected.
    register(engine, "P1")
    whole = gzip.compress((HEADER + rows(0, 5_000)).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: int(len(whole) * 0.7)])
    result = ingest_file(engine, path, now=NOW, chunk_rows=1_000)
    assert result.status == "partial" and "cut short" in result.message
    assert 3_000 < result.accepted < 5_000
    assert result.rows_read == result.accepted + result.quarantined
    assert result.quarantined <= 1  # the cut-off last line, if the cut fell inside one
    b = batch(engine, result.batch_id)
    assert b.status == "partial" and "send it again" in b.message
    balanced(engine, result)
    # The whole file later: what was stored is a duplicate, the rest is added.
    full = tmp_path / "full.csv.gz"
    full.write_bytes(whole)
    again = ingest_file(engine, full, now=NOW)
    assert (again.status, again.accepted + result.accepted, again.duplicates) == (
        "ok",
        5_000,
        result.accepted,
    )


def test_upper_case_and_padded_headers_and_json_keys_are_matched(engine, tmp_path):
    # Was: the file rejected whole ("missing column(s) txn_id ...").
    register(engine, "P1")
    path = tmp_path / "upper.csv"
    path.write_text(HEADER.upper().replace(",POINT_ID,", ", Point_Id ,") + rows(0, 10))
    assert ingest_file(engine, path, now=NOW).accepted == 10
    jsonl = tmp_path / "upper.jsonl"
    jsonl.write_text(
        '{"TXN_ID": "J1", "Point_ID": "P1", "OCCURRED_AT": "2026-03-01T03:00:00Z", '
        '"AMOUNT": 100, "PAYMENT_METHOD": "cash", "STATUS": "paid"}\n'
    )
    assert ingest_file(engine, jsonl, now=NOW).accepted == 1
    assert stored(engine, quarantine) == 0
