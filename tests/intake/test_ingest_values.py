"""Values read as what they are, with the same verdict on SQLite and PostgreSQL (issue 14)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from pipeline.intake import validate
from pipeline.intake.ingest import ingest_file, ingest_frame, quarantine_reasons
from pipeline.intake.validate import validate_chunk
from pipeline.store.schema import transactions
from tests.helpers.registry import register

HEADER = "txn_id,point_id,occurred_at,amount,payment_method,status,operator_id,payer_ref\n"
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def row(i: int, **overrides) -> str:
    values = {
        "txn_id": f"T{i}",
        "point_id": "P1",
        "occurred_at": f"2026-03-01T10:{i % 60:02d}:00+07:00",
        "amount": str(1000 + i),
        "payment_method": "cash",
        "status": "paid",
        "operator_id": "op1",
        "payer_ref": "",
    }
    values.update(overrides)
    return ",".join(values.values()) + "\n"


def stored_ids(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(transactions.c.txn_id)).scalars())


def test_overlong_ids_are_quarantined_with_a_reason_on_both_databases(engine, tmp_path):
    # Was: stored on SQLite; a traceback (rc 1) on PostgreSQL, where String(128)/(64) holds.
    register(engine, "P1")
    body = (
        "".join(row(i) for i in range(100))
        + row(100, txn_id="X" * 200)
        + row(101, operator_id="o" * 100)
        + row(102, payer_ref="h" * 300)
        + row(103, txn_id="Y" * 128, operator_id="o" * 64, payer_ref="h" * 128)  # at the limits
    )
    path = tmp_path / "long.csv"
    path.write_text(HEADER + body)
    result = ingest_file(engine, path, now=NOW)
    assert (result.accepted, result.quarantined) == (101, 3)
    reasons = [q["reasons"] for q in quarantine_reasons(engine, result.batch_id)]
    assert reasons == [
        "txn_id is 200 characters, longer than 128",
        "operator_id is 100 characters, longer than 64",
        "payer_ref is 300 characters, longer than 128",
    ]
    assert "Y" * 128 in stored_ids(engine)


def test_nul_and_broken_unicode_in_source_values_are_quarantined_on_both_databases(engine):
    # Was: accepted on SQLite, a traceback on PostgreSQL (which refuses NUL in text).
    register(engine, "P1")
    items = [json.loads(row(i).split(",")[0].join(['"', '"'])) for i in range(3)]
    frame = pd.DataFrame(
        {
            "txn_id": [*items, "T\x00NUL", json.loads('"T\\ud800"')],
            "point_id": "P1",
            "occurred_at": "2026-03-01T03:00:00Z",
            "amount": "1000",
            "payment_method": "cash",
            "status": "paid",
        },
        dtype=object,
    )
    result = ingest_frame(engine, frame, source="api:test", source_ref="page 1", now=NOW)
    assert (result.accepted, result.quarantined) == (3, 2)
    reasons = [q["reasons"] for q in quarantine_reasons(engine, result.batch_id)]
    assert reasons == ["txn_id holds a NUL byte", "txn_id is not valid Unicode text"]


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("1.000", "has a thousands separator"),
        ("1,000", "has a thousands separator"),
        ("5_000", "has a thousands separator"),
        ("1.000.000", "has a thousands separator"),
        ("５０００", "is not a number"),
        ("1e3", "is not a number"),
        ("1000,50", "is not a number"),
    ],
)
def test_amounts_are_read_by_one_rule_whatever_the_neighbours(amount, reason):
    # Was: "1.000" stored as Rp 1; "5_000" and full-width digits taken as numbers only when
    # every other amount in the chunk parsed (a fast path and a fallback disagreed).
    for neighbours in (["1000", "2000"], ["1000", "not a number"]):
        frame = pd.DataFrame(
            {
                "txn_id": ["a", "b", "c"],
                "point_id": "P1",
                "occurred_at": "2026-03-01T03:00:00Z",
                "amount": [amount, *neighbours],
                "payment_method": "cash",
                "status": "paid",
                "operator_id": None,
                "payer_ref": None,
            },
            dtype=object,
        )
        result = validate_chunk(
            frame, known_point_ids={"P1"}, now=NOW, future_tolerance=timedelta(minutes=10)
        )
        assert result.failed[0], amount
        assert any(reason in r for r in result.reasons[0]), result.reasons[0]
        assert not result.failed[1]


def test_every_iso_offset_form_is_accepted_and_times_before_the_earliest_date_are_not():
    # Was: "+07" quarantined as "no UTC offset"; 1970-01-01T00:00:00Z (a lost clock) accepted.
    times = [
        "2026-03-01T10:00:00+07",
        "2026-03-01T10:00:00+0700",
        "2026-03-01T10:00:00+07:00",
        "2026-03-01T03:00:00Z",
        "2026-03-01 03:00:00z",
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:00",
        "2026-03-01",
        "2026-03-01T10:00:00",
    ]
    frame = pd.DataFrame(
        {
            "txn_id": [f"t{i}" for i in range(len(times))],
            "point_id": "P1",
            "occurred_at": times,
            "amount": "1000",
            "payment_method": "cash",
            "status": "paid",
            "operator_id": None,
            "payer_ref": None,
        },
        dtype=object,
    )
    result = validate_chunk(
        frame, known_point_ids={"P1"}, now=NOW, future_tolerance=timedelta(minutes=10)
    )
    assert result.failed.tolist() == [False] * 5 + [True] * 4
    assert all(result.occurred_at[i] == pd.Timestamp("2026-03-01T03:00:00Z") for i in range(5))
    assert result.reasons[5] == [
        'occurred_at "1970-01-01T00:00:00Z" is before 2000-01-01, the earliest date accepted '
        "(a device that lost its clock?)"
    ]
    assert "before 2000-01-01" in result.reasons[6][0]
    assert "with a UTC offset" in result.reasons[7][0]
    later = validate_chunk(
        frame,
        known_point_ids={"P1"},
        now=NOW,
        future_tolerance=timedelta(minutes=10),
        earliest=datetime(2026, 3, 2, tzinfo=UTC),
    )
    assert later.failed[:5].all()


def test_json_objects_and_arrays_are_quarantined_not_stored_as_ids(engine, tmp_path):
    # Was: stored as txn_id text '{"a": 1}'.
    register(engine, "P1")
    good = {
        "txn_id": "J1",
        "point_id": "P1",
        "occurred_at": "2026-03-01T03:00:00Z",
        "amount": 100,
        "payment_method": "cash",
        "status": "paid",
    }
    path = tmp_path / "nested.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in (good, {**good, "txn_id": {"a": 1}}, {**good, "txn_id": "J3", "amount": [1]})
        )
        + "\n"
    )
    result = ingest_file(engine, path, now=NOW)
    assert (result.accepted, result.quarantined) == (1, 2)
    reasons = [q["reasons"] for q in quarantine_reasons(engine, result.batch_id)]
    assert reasons[0] == "txn_id is a JSON object or array, not a single value"
    assert "amount is a JSON object or array" in reasons[1]
    assert stored_ids(engine) == {"J1"}


EDGE_TIMES = [
    "2026-03-01T10:00:00+07",
    "2026-03-01T10:00:00-0700",
    "2026-03-01T10:00+07",
    "2026-03-01T10:00:00+07:xz",
    "2026-03-01T10:00:00.123456+07:00",
    "2026-03-01 03:00:00z",
    "2026-03-01T03:00:00\x00Z",
    "2026-03-01T03:00:00+07:00\n",
    "2026-03-01Z",
    "2026-03-0Z",
    "2026-03-01-07",
    "2026-03-01T10:00:00+٠٧:٠٠",
    "x" * 70 + "Z",
    "2026-03-01T10:00:00+07:00" + "0" * 39,
    "",
    None,
]
EDGE_AMOUNTS = [
    "1000",
    "+5",
    "-0",
    "12.500",
    "12.5000",
    "1.000,50",
    " 1.000 ",
    "\u00a01\u00a0000\u2003",
    "1'000",
    "١٬٠٠٠",
    "１,０００",
    ".5",
    "5.",
    "+.5",
    "+",
    "1..2",
    "5\x00",
    "1" * 32,
    "1" * 33,
    "9" * 40 + ".5",
    "",
    None,
]


def test_the_arrow_and_python_paths_give_the_same_offsets_and_amounts():
    # The Arrow (RE2) kernels replaced the code-point arrays only for columns Arrow holds; a
    # column with a lone surrogate or a non-text value still takes the Python path.
    times = pd.Series(EDGE_TIMES, dtype=object)
    amounts = pd.Series(EDGE_AMOUNTS, dtype=object)
    time_text, amount_text = validate._arrow_text(times), validate._arrow_text(amounts)
    assert time_text is not None and amount_text is not None
    assert (
        validate._has_offset(times, time_text).tolist()
        == validate._has_offset_python(times).tolist()
    )
    arrow_amount, arrow_separated = validate._parse_amount(amounts, amount_text)
    python_amount, python_separated = validate._parse_amount_python(amounts)
    assert arrow_separated.tolist() == python_separated.tolist()
    assert arrow_amount.tobytes() == python_amount.tobytes()  # NaN where unparsed, -0.0 kept
    assert arrow_separated.any() and arrow_separated.sum() < len(EDGE_AMOUNTS) - 5
    assert validate._arrow_text(pd.Series(["\ud800", "1"], dtype=object)) is None
