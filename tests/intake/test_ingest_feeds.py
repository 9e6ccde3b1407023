"""Feed reading and row validation, without a database."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipeline.core.errors import UnusableInputError
from pipeline.intake.feeds import read_feed
from pipeline.intake.validate import (
    SUITES_USED,
    failing_rows,
    load_suite,
    suite_path,
    validate_chunk,
)

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _rows(n: int, start: int = 0) -> str:
    return "".join(
        f"T{i},P1,2026-03-01T10:{i % 60:02d}:00+07:00,{1000 + i},cash,paid,op1\n"
        for i in range(start, start + n)
    )


@pytest.mark.parametrize("name", SUITES_USED)
def test_every_suite_the_pipeline_names_is_a_file_in_expectations(name):
    assert suite_path(name).is_file(), f"expectations/{name}.json is missing"
    assert load_suite(name).expectations


def test_csv_is_read_in_chunks_with_the_files_line_numbers(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_text(HEADER + _rows(25))
    chunks = list(read_feed(path, chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert chunks[2].line_no.tolist() == [22, 23, 24, 25, 26]  # line 1 is the header
    assert chunks[0].frame.loc[0, "amount"] == "1000"  # strings, not numbers
    assert pd.isna(chunks[0].frame.loc[0, "payer_ref"])  # optional column absent from the file


def test_gzipped_json_lines_are_read_and_a_broken_line_is_a_malformed_line(tmp_path):
    path = tmp_path / "feed.jsonl.gz"
    good = {
        "txn_id": "T1",
        "point_id": "P1",
        "occurred_at": "2026-03-01T10:00:00+07:00",
        "amount": 5000,
        "payment_method": "cash",
        "status": "paid",
    }
    with gzip.open(path, "wt") as handle:
        handle.write(
            json.dumps(good) + "\n{not json\n" + json.dumps({**good, "txn_id": "T2"}) + "\n"
        )
    (chunk,) = list(read_feed(path))
    assert chunk.frame["txn_id"].tolist() == ["T1", "T2"]
    assert chunk.frame.loc[0, "amount"] == "5000"
    (broken,) = chunk.malformed
    assert (broken.line_no, broken.text) == (2, "{not json")
    assert broken.reason == "the line is not a JSON object"
    assert chunk.line_no.tolist() == [1, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n", r"missing column\(s\) txn_id"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "binary data"),
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"txn_id,po\xffint_id\nT1,P1\n", "not UTF-8"),
        (b'{"a": 1}\n', "missing column"),
    ],
    ids=["wrong-columns", "binary", "empty", "blank", "undecodable", "json-wrong-keys"],
)
def test_a_file_that_is_not_a_feed_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "week3.csv"
    path.write_bytes(content)
    with pytest.raises(UnusableInputError, match=message) as caught:
        list(read_feed(path))
    assert "week3.csv" in str(caught.value)


def test_a_folder_or_a_missing_file_is_refused_saying_which(tmp_path):
    folder = tmp_path / "feeds"
    folder.mkdir()
    with pytest.raises(UnusableInputError, match=r"feeds: is a folder; give its feed files"):
        list(read_feed(folder))
    with pytest.raises(UnusableInputError, match=r"week9.csv: no such file"):
        list(read_feed(tmp_path / "week9.csv"))


def test_validation_gives_every_reason_in_plain_words():
    frame = pd.DataFrame(
        {
            "txn_id": ["a", "b", None, "d", "e", "f"],
            "point_id": ["P1", "P999", "P1", "P1", "P1", "P1"],
            "occurred_at": [
                "2026-03-01T10:00:00+07:00",
                "2026-03-01T03:00:00Z",
                "2026-03-01T10:00:00",
                "yesterday",
                "2026-03-02T00:30:00+00:00",
                "2026-03-01 10:00:00-0500",
            ],
            "amount": ["100", "-5000", "5.5", "x", "1", "2"],
            "payment_method": ["cash", "qris", "bitcoin", "cash", "card", "ewallet"],
            "status": ["paid", "void", "paid", "lost", "refund", "paid"],
            "operator_id": [None] * 6,
            "payer_ref": [None] * 6,
        },
        dtype=str,
    )
    result = validate_chunk(
        frame, known_point_ids={"P1"}, now=NOW, future_tolerance=timedelta(minutes=10)
    )
    assert result.failed.tolist() == [False, True, True, True, True, False]
    assert result.reasons[1] == [
        'point_id "P999" is not in the registry',
        'amount "-5000" is negative',
    ]
    assert set(result.reasons[2]) == {
        "txn_id is missing",
        'amount "5.5" is not whole rupiah',
        'payment_method "bitcoin" is not one of cash, qris, card, transfer, ewallet',
        'occurred_at "2026-03-01T10:00:00" is not an ISO-8601 time with a UTC offset',
    }
    assert set(result.reasons[3]) == {
        'amount "x" is not a number',
        'status "lost" is not one of paid, void, refund',
        'occurred_at "yesterday" is not an ISO-8601 time with a UTC offset',
    }
    assert result.reasons[4] == [
        'occurred_at "2026-03-02T00:30:00+00:00" is more than 10 minutes in the future'
    ]
    assert result.occurred_at[5] == pd.Timestamp("2026-03-01T15:00:00Z")


def test_more_failing_rows_than_great_expectations_lists_by_default_all_come_back():
    n = 1_000
    frame = pd.DataFrame(
        {
            "txn_id": [f"T{i}" for i in range(n)],
            "point_id": "P1",
            "occurred_at": "2026-03-01T10:00:00+07:00",
            "amount": "-1",
            "payment_method": "cash",
            "status": "paid",
            "operator_id": None,
            "payer_ref": None,
        }
    )
    result = validate_chunk(
        frame, known_point_ids={"P1"}, now=NOW, future_tolerance=timedelta(minutes=10)
    )
    assert result.failed_count == n


def test_a_chunk_failing_only_some_expectations_gets_every_reason_of_every_row():
    # Each expectation is rerun for its rows only when it failed on the chunk: rows failing one,
    # two or none of them, each count past GX's 200-row partial list, must all come back whole.
    n = 2_000
    negative = {i for i in range(n) if i % 7 == 0}
    lost = {i for i in range(n) if i % 9 == 0}
    frame = pd.DataFrame(
        {
            "txn_id": [f"T{i}" for i in range(n)],
            "point_id": "P1",
            "occurred_at": "2026-03-01T10:00:00+07:00",
            "amount": ["-1" if i in negative else "1000" for i in range(n)],
            "payment_method": "cash",
            "status": ["lost" if i in lost else "paid" for i in range(n)],
            "operator_id": None,
            "payer_ref": None,
        }
    )
    result = validate_chunk(
        frame, known_point_ids={"P1"}, now=NOW, future_tolerance=timedelta(minutes=10)
    )
    expected = {}
    for i in range(n):
        reasons = ['amount "-1" is negative'] if i in negative else []
        reasons += ['status "lost" is not one of paid, void, refund'] if i in lost else []
        if reasons:
            expected[i] = reasons
    assert {i: sorted(r) for i, r in result.reasons.items()} == expected
    assert result.failed.tolist() == [i in expected for i in range(n)]


def test_an_expectation_that_cannot_run_stops_validation():
    frame = pd.DataFrame({"txn_id": ["T1"]})  # the suite's other columns are missing
    with pytest.raises(RuntimeError, match="failed to run"):
        failing_rows(frame, "transactions", {"future_tolerance_minutes": 10.0})


def test_a_header_with_repeated_other_columns_is_read_and_a_repeated_feed_column_refused(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text(HEADER.rstrip("\n") + ",note,note\n" + _rows(2).replace("\n", ",a,b\n"))
    (chunk,) = list(read_feed(path))
    assert len(chunk) == 2 and chunk.extra_columns == ("note", "note.1")
    twice = tmp_path / "twice.csv"
    twice.write_text("TXN_ID," + HEADER)
    with pytest.raises(UnusableInputError, match="txn_id appear more than once"):
        list(read_feed(twice))
