"""Reconciliation feeds in: self-assessed tax returns, treasury bank statement, collector deposits.

Same rules as the transaction feed: each file is one ``ingest_batches`` row (lineage), rows are
checked against a Great Expectations suite loaded from ``expectations/<suite>.json`` plus the few
checks a suite cannot express (a date that matches the pattern but does not exist, cross-field
rules); every failing row goes to ``quarantine`` with its reasons in plain words; re-ingesting adds
nothing (dedupe on each feed's natural key) and a resent row whose content differs from the stored
one is quarantined as a conflict. One file is one database transaction: no half batch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, Table, insert, select, tuple_, update

from pipeline.core.errors import UnusableInputError
from pipeline.reference.points import known_points
from pipeline.store.schema import (
    bank_deposits,
    collector_deposits,
    ingest_batches,
    quarantine,
    tax_returns,
)

FEED_KINDS = ("returns", "bank", "collector")

_RUPIAH = re.compile(r"^(\d+|\d{1,3}(\.\d{3})+|\d{1,3}(,\d{3})+)([.,]00)?$")


@dataclass
class FeedResult:
    """What one file did: the batch it became and where every row went."""

    kind: str
    file: str
    batch_id: int
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    status: str = "ok"
    reasons: dict[str, int] = field(default_factory=dict)  # reason -> rows, for the summary


def parse_rupiah(text: str) -> int:
    """Whole rupiah from a bank-style amount: ``1250000``, ``1.250.000,00`` or ``1,250,000.00``."""
    text = text.strip()
    if not _RUPIAH.match(text):
        raise ValueError(f"{text!r} is not a whole rupiah amount")
    if len(text) > 3 and text[-3] in ".," and text.endswith("00"):
        text = text[:-3]
    return int(text.replace(".", "").replace(",", ""))


def parse_day(text: str) -> date:
    """A calendar date written ``YYYY-MM-DD`` or, as Indonesian banks export, ``DD/MM/YYYY``."""
    text = text.strip()
    if "/" in text:
        return datetime.strptime(text, "%d/%m/%Y").date()
    return date.fromisoformat(text)


def _parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return value.astimezone(UTC)


# --- The three feeds -----------------------------------------------------------------------------


def _returns_row(raw: dict) -> tuple[dict | None, list[str]]:
    problems, row = [], {"point_id": raw["point_id"], "return_ref": raw.get("return_ref")}
    for name in ("period_start", "period_end"):
        try:
            row[name] = parse_day(raw[name])
        except ValueError:
            problems.append(f"{name} {raw[name]!r} is not a calendar date")
    for name in ("declared_sales", "tax_due"):
        row[name] = parse_rupiah(raw[name])
    row["filed_at"] = None
    if raw.get("filed_at"):
        try:
            row["filed_at"] = _parse_instant(raw["filed_at"])
        except ValueError:
            problems.append(f"filed_at {raw['filed_at']!r} is not an ISO-8601 time with offset")
    if not problems and row["period_end"] < row["period_start"]:
        problems.append(
            f"period_end {raw['period_end']} is before period_start {raw['period_start']}"
        )
    if not problems and row["tax_due"] > row["declared_sales"]:
        problems.append(f"tax_due {row['tax_due']} exceeds declared_sales {row['declared_sales']}")
    return (None if problems else row), problems


def _bank_row(raw: dict) -> tuple[dict | None, list[str]]:
    problems = []
    try:
        booked_on = parse_day(raw["booked_on"])
    except ValueError:
        return None, [f"booked_on {raw['booked_on']!r} is not a calendar date"]
    value_date = booked_on
    if raw.get("value_date"):
        try:
            value_date = parse_day(raw["value_date"])
        except ValueError:
            problems.append(f"value_date {raw['value_date']!r} is not a calendar date")
    debit = parse_rupiah(raw["debit"]) if raw.get("debit") else 0
    credit = parse_rupiah(raw["credit"]) if raw.get("credit") else 0
    if bool(debit) == bool(credit):
        problems.append(
            f"exactly one of debit {raw.get('debit')!r} / credit {raw.get('credit')!r} "
            "must be non-zero"
        )
    if problems:
        return None, problems
    line_id = raw.get("line_id")
    if not line_id:
        # No line id in the export: the running balance keeps two equal payments on a day distinct.
        basis = "|".join(
            str(raw.get(k) or "")
            for k in ("booked_on", "description", "debit", "credit", "balance")
        )
        line_id = "h:" + hashlib.sha1(basis.encode()).hexdigest()[:24]
    return {
        "line_id": line_id,
        "booked_on": booked_on,
        "value_date": value_date,
        "amount": credit - debit,
        "reference": raw["description"],
        "point_id": raw.get("point_id"),
        "collector_id": raw.get("collector_id"),
        "channel": raw.get("channel") or "other",
    }, []


def _collector_row(raw: dict) -> tuple[dict | None, list[str]]:
    problems = []
    try:
        day = parse_day(raw["day"])
    except ValueError:
        return None, [f"day {raw['day']!r} is not a calendar date"]
    deposited_on = day
    if raw.get("deposited_on"):
        try:
            deposited_on = parse_day(raw["deposited_on"])
        except ValueError:
            problems.append(f"deposited_on {raw['deposited_on']!r} is not a calendar date")
    if not problems and deposited_on < day:
        problems.append(f"deposited_on {deposited_on} is before the collection day {day}")
    if problems:
        return None, problems
    return {
        "collector_id": raw["collector_id"],
        "day": day,
        "deposited_on": deposited_on,
        "cash_amount": parse_rupiah(raw["cash_amount"]),
        "point_id": raw.get("point_id"),
        "area": raw.get("area"),
        "receipt_ref": raw.get("receipt_ref"),
    }, []


@dataclass(frozen=True)
class FeedSpec:
    kind: str
    suite: str  # expectations/<suite>.json
    table: Table
    required: tuple[str, ...]
    optional: tuple[str, ...]
    to_row: Callable[[dict], tuple[dict | None, list[str]]]
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.primary_key.columns)


FEEDS: dict[str, FeedSpec] = {
    "returns": FeedSpec(
        "returns",
        "returns",
        tax_returns,
        ("point_id", "period_start", "period_end", "declared_sales", "tax_due"),
        ("filed_at", "return_ref"),
        _returns_row,
    ),
    "bank": FeedSpec(
        "bank",
        "bank_statement",
        bank_deposits,
        ("booked_on", "description", "debit", "credit"),
        ("line_id", "value_date", "balance", "channel", "point_id", "collector_id"),
        _bank_row,
        # Headers as Indonesian internet-banking exports write them.
        aliases={
            "tanggal": "booked_on",
            "tgl": "booked_on",
            "tanggal transaksi": "booked_on",
            "tanggal valuta": "value_date",
            "keterangan": "description",
            "uraian": "description",
            "reference": "description",
            "debet": "debit",
            "kredit": "credit",
            "saldo": "balance",
            "no. referensi": "line_id",
            "no referensi": "line_id",
            "kanal": "channel",
        },
    ),
    "collector": FeedSpec(
        "collector",
        "collector_deposits",
        collector_deposits,
        ("collector_id", "day", "cash_amount"),
        ("deposited_on", "point_id", "area", "receipt_ref"),
        _collector_row,
    ),
}


# --- Great Expectations --------------------------------------------------------------------------


def expectation_failures(
    frame: pd.DataFrame, suite_name: str, parameters: dict
) -> dict[int, list[str]]:
    """Row position -> plain-word reasons, for every failing row (COMPLETE: not the first 200).

    Runs the suite through ``pipeline.intake.validate.failing_rows`` (one Great Expectations context per
    process) and fills each expectation's ``meta.reason`` template with the row's raw values, as
    the transaction feed does.
    """
    from pipeline.intake.validate import failing_rows

    raw = {c: frame[c].to_numpy(dtype=object) for c in frame.columns}
    failures: dict[int, list[str]] = {}
    for template, positions in failing_rows(frame, suite_name, parameters):
        for position in positions:
            values = _Blank({c: column[position] for c, column in raw.items()})
            failures.setdefault(position, []).append(template.format_map(values))
    return failures


class _Blank(dict):
    """Template values: a missing or empty value reads as nothing rather than 'None'."""

    def __missing__(self, key):
        return ""

    def __getitem__(self, key):
        value = super().__getitem__(key) if key in self else ""
        return "" if value is None else value


# --- Reading and storing -------------------------------------------------------------------------


def _read_frame(path: Path, spec: FeedSpec) -> pd.DataFrame:
    try:
        with path.open("rb") as probe:
            head = probe.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
            handle.seek(0)
            # Spreadsheets in an Indonesian locale export "Tanggal;Keterangan;..." because the
            # comma is their decimal mark: the header line tells which separator is in use.
            sep = ";" if header.count(";") > header.count(",") else ","
            frame = pd.read_csv(
                handle, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
            )
    except FileNotFoundError:
        raise UnusableInputError(f"{spec.kind} feed {path}: no such file") from None
    except (UnicodeDecodeError, pd.errors.ParserError, gzip.BadGzipFile, EOFError) as exc:
        raise UnusableInputError(f"{spec.kind} feed {path}: not a CSV file ({exc})") from None
    except pd.errors.EmptyDataError:
        raise UnusableInputError(f"{spec.kind} feed {path}: the file is empty") from None
    frame.columns = [spec.aliases.get(c.strip().lower(), c.strip().lower()) for c in frame.columns]
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        raise UnusableInputError(
            f"{spec.kind} feed {path}: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(spec.required)}[, {', '.join(spec.optional)}]"
        )
    for column in spec.optional:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame[[*spec.required, *spec.optional]].apply(lambda s: s.str.strip())
    # Empty text is "not given": GX's null checks and the optional columns both want None.
    return frame.replace({"": None}).reset_index(drop=True)


def _content(row: dict, key: tuple[str, ...]) -> dict:
    return {k: v for k, v in row.items() if k not in key and k != "batch_id"}


def _existing(
    connection, table: Table, key: tuple[str, ...], keys: list[tuple]
) -> dict[tuple, dict]:
    found: dict[tuple, dict] = {}
    columns = [table.c[k] for k in key]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        where = (
            tuple_(*columns).in_(chunk) if len(key) > 1 else columns[0].in_([k[0] for k in chunk])
        )
        for row in connection.execute(select(table).where(where)).mappings():
            found[tuple(row[k] for k in key)] = dict(row)
    return found


def _same(stored: dict, new: dict, key: tuple[str, ...]) -> bool:
    return all(stored.get(k) == v for k, v in _content(new, key).items())


def ingest_feed(engine: Engine, kind: str, path: Path, *, source: str | None = None) -> FeedResult:
    """Validate and store one reconciliation feed file; returns where every row went."""
    if kind not in FEEDS:
        raise UnusableInputError(f"feed kind {kind!r} is not one of {', '.join(FEED_KINDS)}")
    spec = FEEDS[kind]
    path = Path(path)
    started = datetime.now(UTC)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    with engine.begin() as connection:
        batch_id = connection.execute(
            insert(ingest_batches).values(
                source=source or f"recon:{kind}",
                source_ref=str(path),
                sha256=sha256,
                started_at=started,
                status="running",
                rows_read=0,
                accepted=0,
                quarantined=0,
                duplicates=0,
            )
        ).inserted_primary_key[0]
    result = FeedResult(kind=kind, file=str(path), batch_id=batch_id)
    try:
        frame = _read_frame(path, spec)
        _store(engine, spec, frame, result)
    except UnusableInputError as exc:
        _finish(engine, result, "rejected", str(exc))
        raise
    except Exception as exc:
        _finish(engine, result, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return result


def _finish(engine: Engine, result: FeedResult, status: str, message: str | None) -> None:
    result.status = status
    with engine.begin() as connection:
        connection.execute(
            update(ingest_batches)
            .where(ingest_batches.c.batch_id == result.batch_id)
            .values(
                status=status,
                finished_at=datetime.now(UTC),
                rows_read=result.rows_read,
                accepted=result.accepted,
                quarantined=result.quarantined,
                duplicates=result.duplicates,
                message=message,
            )
        )


def _store(engine: Engine, spec: FeedSpec, frame: pd.DataFrame, result: FeedResult) -> None:
    result.rows_read = len(frame)
    parameters = {"known_points": sorted(known_points(engine))}
    failures = expectation_failures(frame, spec.suite, parameters) if len(frame) else {}
    bad: list[tuple[int, dict, list[str], str]] = []  # position, raw, reasons, kind
    good: list[tuple[int, dict, dict]] = []
    records = frame.to_dict("records")
    for position, raw in enumerate(records):
        if position in failures:
            bad.append((position, raw, failures[position], "invalid"))
            continue
        row, problems = spec.to_row(raw)
        if problems:
            bad.append((position, raw, problems, "invalid"))
        else:
            good.append((position, raw, row))

    key = spec.key
    with engine.begin() as connection:
        stored = _existing(
            connection, spec.table, key, list({tuple(r[k] for k in key) for _, _, r in good})
        )
        fresh: dict[tuple, dict] = {}
        for position, raw, row in good:
            row_key = tuple(row[k] for k in key)
            earlier = fresh.get(row_key) or stored.get(row_key)
            if earlier is None:
                fresh[row_key] = row
            elif _same(earlier, row, key):
                result.duplicates += 1
            else:
                bad.append(
                    (
                        position,
                        raw,
                        [
                            f"{'/'.join(map(str, row_key))} was already received "
                            "with different content"
                        ],
                        "conflict",
                    )
                )
        rows = [{**row, "batch_id": result.batch_id} for row in fresh.values()]
        for start in range(0, len(rows), 1000):
            connection.execute(insert(spec.table), rows[start : start + 1000])
        result.accepted = len(rows)
        if bad:
            connection.execute(
                insert(quarantine),
                [
                    {
                        "batch_id": result.batch_id,
                        "line_no": position + 1,
                        "point_id": raw.get("point_id"),
                        "txn_id": "/".join(str(raw.get(k) or "") for k in key if k in raw) or None,
                        "raw": json.dumps(raw, ensure_ascii=False),
                        "reasons": "; ".join(reasons),
                        "kind": kind,
                    }
                    for position, raw, reasons, kind in sorted(bad, key=lambda b: b[0])
                ],
            )
        result.quarantined = len(bad)
        for _, _, reasons, _ in bad:
            for reason in reasons:
                result.reasons[reason] = result.reasons.get(reason, 0) + 1
        connection.execute(
            update(ingest_batches)
            .where(ingest_batches.c.batch_id == result.batch_id)
            .values(
                status="ok",
                finished_at=datetime.now(UTC),
                rows_read=result.rows_read,
                accepted=result.accepted,
                quarantined=result.quarantined,
                duplicates=result.duplicates,
            )
        )
