"""The filtered queue and one case as CSV and XLSX, for the inspection report.

Cells that a spreadsheet would run as a formula (text starting with = + - @) are prefixed with
an apostrophe: operator ids and reasons come from feeds, and a feed must not run code in Excel.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from pipeline.core.times import DEFAULT_TIMEZONE

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

QUEUE_COLUMNS = (
    "case_id",
    "point_id",
    "point_name",
    "district",
    "revenue_type",
    "start_local",
    "end_local",
    "timezone",
    "kind",
    "severity",
    "score",
    "shortfall_rp",
    "status",
    "assignee",
    "reasons",
    "operators",
    "origin",
)


def _cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def local_text(moment: datetime | None, tz_name: str | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz_name or DEFAULT_TIMEZONE)).strftime("%Y-%m-%d %H:%M:%S")


def queue_table(rows) -> list[list]:
    """Header plus one row per case."""
    table = [list(QUEUE_COLUMNS)]
    for r in rows:
        table.append(
            [
                r.case_id,
                r.point_id,
                r.point_name or "",
                r.district or "",
                r.revenue_type or "",
                local_text(r.start_at, r.timezone),
                local_text(r.end_at, r.timezone),
                r.timezone or DEFAULT_TIMEZONE,
                r.kind,
                r.severity,
                round(float(r.score), 4),
                int(r.shortfall_rp),
                r.status,
                r.assignee or "",
                r.reasons,
                r.operators or "",
                r.origin,
            ]
        )
    return table


def case_sheets(case, hours: list[dict], txns, events) -> dict[str, list[list]]:
    """The case as named tables: summary, flagged hours, transactions, audit trail."""
    tz = case.timezone or DEFAULT_TIMEZONE
    summary = [["field", "value"]] + [
        [name, value] for name, value in zip(QUEUE_COLUMNS, queue_table([case])[1], strict=True)
    ]
    hour_table = [
        [
            "hour_local",
            "gross_paid_rp",
            "usual_median_rp",
            "paid_txns",
            "voids",
            "void_rp",
            "refunds",
            "refund_rp",
            "operators",
        ]
    ] + [
        [
            local_text(h["hour_start"], tz),
            h["gross_paid"],
            h["median"] if h["median"] is not None else "",
            h["txn_count"],
            h["void_count"],
            h["void_amount"],
            h["refund_count"],
            h["refund_amount"],
            h["operators"],
        ]
        for h in hours
    ]
    txn_table = [
        ["occurred_local", "txn_id", "amount_rp", "status", "payment_method", "operator_id"]
    ] + [
        [
            local_text(t.occurred_at, tz),
            t.txn_id,
            int(t.amount),
            t.status,
            t.payment_method,
            t.operator_id or "",
        ]
        for t in txns
    ]
    trail = [["at_utc", "actor", "action", "before", "after", "note"]] + [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            _state_text(e.before),
            _state_text(e.after),
            e.note,
        ]
        for e in events
    ]
    return {
        "Case": summary,
        "Flagged hours": hour_table,
        "Transactions": txn_table,
        "Audit trail": trail,
    }


def _state_text(state: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(state.items()) if v is not None)


def to_csv(table: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in table:
        writer.writerow([_cell(v) for v in row])
    # BOM so Excel opens the UTF-8 file with accents intact (district names).
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def sheets_to_csv(sheets: dict[str, list[list]]) -> bytes:
    """Several tables in one CSV: each under a line naming it, separated by a blank line."""
    out = io.StringIO()
    writer = csv.writer(out)
    for index, (name, table) in enumerate(sheets.items()):
        if index:
            writer.writerow([])
        writer.writerow([f"# {name}"])
        for row in table:
            writer.writerow([_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(sheets: dict[str, list[list]]) -> bytes:
    workbook = Workbook(write_only=True)
    for name, table in sheets.items():
        sheet = workbook.create_sheet(title=name[:31])
        for row in table:
            sheet.append([_cell(v) for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
