"""The filtered queue and one case as CSV and XLSX, for the inspection report.

A table is its columns (a code, a msgid for the header, a type) and its rows of typed values:
times are local ``datetime`` values (the column header names the zone), money is whole rupiah,
codes are shown by their label. The XLSX gets real dates, an ``Rp`` number format, a frozen
header row and widths that fit; the CSV the same columns as text a spreadsheet parses. Headers
and labels are in the reader's language.

Cells that a spreadsheet would run as a formula (text starting with = + - @) are prefixed with
an apostrophe: operator ids and reasons come from feeds, and a feed must not run code in Excel.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from pipeline.core.leakage_kinds import shortfall_measure
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.review import formats
from pipeline.review.formats import zone_name
from pipeline.review.i18n import N_, translations
from pipeline.review.labels import label

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MONEY_FORMAT = '"Rp" #,##0'
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
SECONDS_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
# Column types: how a value is written and how wide its column starts.
_WIDTHS = {"int": 8, "money": 15, "datetime": 17, "seconds": 20, "date": 12, "float": 8}

# code, header msgid, type
QUEUE_SPEC = (
    ("case_id", N_("Case"), "int"),
    ("point_id", N_("Point"), "text"),
    ("point_name", N_("Point name"), "text"),
    ("district", N_("District"), "text"),
    ("revenue_type", N_("Revenue type"), "label"),
    ("start_local", N_("Start"), "datetime"),
    ("end_local", N_("End"), "datetime"),
    ("timezone", N_("Time zone"), "text"),
    ("kind", N_("Pattern"), "label"),
    ("severity", N_("Severity"), "label"),
    ("score", N_("Score"), "float"),
    ("shortfall_rp", N_("Estimated shortfall"), "money"),
    ("measure", N_("What is missing"), "label"),
    ("status", N_("Status"), "label"),
    ("assignee", N_("Assignee"), "text"),
    ("decided_by", N_("Decided by"), "text"),
    ("decided_at", N_("Decided at"), "datetime"),
    ("decision_note", N_("Decision note"), "text"),
    ("reasons", N_("Reasons"), "text"),
    ("operators", N_("Operators"), "text"),
    ("origin", N_("Origin"), "label"),
)
QUEUE_COLUMNS = tuple(code for code, _, _ in QUEUE_SPEC)


@dataclass
class Table:
    """Header texts, column types and rows of one sheet."""

    headers: list[str]
    types: list[str]
    rows: list[list]


def _cell(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _local(moment: datetime | None, tz_name: str | None) -> datetime | None:
    """``moment`` as a naive local time: spreadsheets hold no zones, the header names it."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(tz_name or DEFAULT_TIMEZONE)).replace(tzinfo=None)


def _headers(spec, lang: str, zone: str | None) -> list[str]:
    _ = translations(lang).gettext
    out = []
    for _code, msgid, kind in spec:
        header = _(msgid)
        if kind in ("datetime", "seconds") and zone:
            header += f" ({zone})"
        out.append(header)
    return out


def _typed(spec, values: list, lang: str) -> list:
    return [
        label(v, lang) if kind == "label" and v else v
        for (_, _, kind), v in zip(spec, values, strict=True)
    ]


def _queue_values(r, decision, lang: str) -> list:
    tz = r.timezone or DEFAULT_TIMEZONE
    return [
        r.case_id,
        r.point_id,
        r.point_name or "",
        r.district or "",
        r.revenue_type or "",
        _local(r.start_at, tz),
        _local(r.end_at, tz),
        tz,
        r.kind,
        r.severity,
        round(float(r.score), 4),
        int(r.shortfall_rp),
        shortfall_measure(r.origin, r.kind, r.operators),
        r.status,
        r.assignee or "",
        decision.actor if decision else "",
        _local(decision.at, tz) if decision else None,
        decision.note if decision else "",
        formats.reason_text(r.reason_parts, r.reasons, lang, tz),
        r.operators or "",
        r.origin,
    ]


def queue_table(rows, decisions: dict, lang: str) -> Table:
    """One row per case, with its latest decision (who, when, the note) beside its status.

    Start and end are in each point's own zone, named in the time zone column (the header says
    "local time" unless every case shares one zone, which it then names)."""
    zones = {r.timezone or DEFAULT_TIMEZONE for r in rows}
    zone = zone_name(zones.pop()) if len(zones) == 1 else translations(lang).gettext("local time")
    return Table(
        _headers(QUEUE_SPEC, lang, zone),
        [kind for _, _, kind in QUEUE_SPEC],
        [_typed(QUEUE_SPEC, _queue_values(r, decisions.get(r.case_id), lang), lang) for r in rows],
    )


HOUR_SPEC = (
    ("hour_local", N_("Hour"), "datetime"),
    ("kind", N_("Pattern"), "label"),
    ("recorded_rp", N_("Recorded"), "money"),
    ("expected_rp", N_("Expected"), "money"),
    ("shortfall_rp", N_("Shortfall"), "money"),
    ("paid_txns", N_("Paid txns"), "int"),
    ("voids", N_("Voids"), "int"),
    ("void_rp", N_("Voided amount"), "money"),
    ("refunds", N_("Refunds"), "int"),
    ("refund_rp", N_("Refunded amount"), "money"),
)
DAY_SPEC = (("day_local", N_("Day"), "date"), ("hours", N_("Flagged hours"), "int")) + HOUR_SPEC[2:]
TXN_SPEC = (
    ("occurred_local", N_("Time"), "seconds"),
    ("txn_id", N_("Transaction"), "text"),
    ("amount_rp", N_("Amount"), "money"),
    ("status", N_("Status"), "label"),
    ("payment_method", N_("Payment"), "label"),
    ("operator_id", N_("Operator"), "text"),
)
TRAIL_SPEC = (
    ("at_local", N_("When"), "seconds"),
    ("actor", N_("Who"), "text"),
    ("action", N_("What"), "label"),
    ("before", N_("Before"), "text"),
    ("after", N_("After"), "text"),
    ("note", N_("Note"), "text"),
)
RECON_SPEC = (
    ("day_local", N_("Day"), "date"),
    ("recorded", N_("Recorded by the devices"), "money"),
    ("declared", N_("Declared in the return"), "money"),
    ("tax_on_recorded", N_("Tax on recorded sales"), "money"),
    ("tax_due_declared", N_("Tax due as declared"), "money"),
    ("deposited", N_("Tax deposited"), "money"),
    ("handed_in", N_("Cash handed in"), "money"),
)


def case_sheets(case, breakdown, recon, txns, events, lang: str) -> dict[str, Table]:
    """The case as named tables: summary, its flagged hours (or days, or the reconciliation
    figures), its transactions and its audit trail. Closed hours inside a span are not rows:
    only the hours the detector flagged, whose shortfalls add up to the summary's."""
    _ = translations(lang).gettext
    tz = case.timezone or DEFAULT_TIMEZONE
    zone = zone_name(tz)
    decision = next((e for e in reversed(events) if e.action == "decide"), None)
    queue = queue_table([case], {case.case_id: decision} if decision else {}, lang)
    summary = Table(
        [_("Field"), _("Value")],
        ["text", "mixed"],
        [[h, v] for h, v in zip(queue.headers, queue.rows[0], strict=True)],
    )
    sheets: dict[str, Table] = {_("Case"): summary}
    if recon is not None:
        columns = [c for c in RECON_SPEC if c[0] == "day_local" or c[0] in recon["columns"]]
        sheets[_("Recorded, declared and deposited")] = Table(
            _headers(columns, lang, zone),
            [kind for _, _, kind in columns],
            [
                [row.get("day") if c == "day_local" else row.get(c) for c, _, _ in columns]
                for row in recon["rows"]
            ],
        )
    elif breakdown.per == "hour":
        sheets[_("Flagged hours")] = Table(
            _headers(HOUR_SPEC, lang, zone),
            [kind for _, _, kind in HOUR_SPEC],
            [
                _typed(HOUR_SPEC, [_local(h["hour_start"], tz), h["kind"], *_amounts(h)], lang)
                for h in breakdown.rows
            ],
        )
    else:
        sheets[_("Flagged days")] = Table(
            _headers(DAY_SPEC, lang, zone),
            [kind for _, _, kind in DAY_SPEC],
            [[d["day"], d["hours"], *_amounts(d)] for d in breakdown.rows],
        )
    sheets[_("Transactions")] = Table(
        _headers(TXN_SPEC, lang, zone),
        [kind for _, _, kind in TXN_SPEC],
        [
            _typed(
                TXN_SPEC,
                [
                    _local(t.occurred_at, tz),
                    t.txn_id,
                    int(t.amount),
                    t.status,
                    t.payment_method,
                    t.operator_id or "",
                ],
                lang,
            )
            for t in txns
        ],
    )
    sheets[_("Audit trail")] = Table(
        _headers(TRAIL_SPEC, lang, zone),
        [kind for _, _, kind in TRAIL_SPEC],
        [
            _typed(
                TRAIL_SPEC,
                [
                    _local(e.at, tz),
                    e.actor,
                    e.action,
                    _state_text(e.before, lang),
                    _state_text(e.after, lang),
                    formats.event_note(e, lang, tz),
                ],
                lang,
            )
            for e in events
        ],
    )
    return sheets


def _amounts(row: dict) -> list:
    return [
        row["recorded"],
        row["expected"],
        row["shortfall"],
        row["txn_count"],
        row["void_count"],
        row["void_amount"],
        row["refund_count"],
        row["refund_amount"],
    ]


def _state_text(state: dict, lang: str) -> str:
    parts = []
    for key, value in sorted(state.items()):
        if value is None:
            continue
        parts.append(label(value, lang) if key == "status" else f"{key}={value}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- writers


def _text(value, kind: str) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S" if kind == "seconds" else "%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow([_cell(_text(v, k)) for v, k in zip(row, table.types, strict=True)])
    # BOM so Excel opens the UTF-8 file with accents intact (district names).
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def sheets_to_csv(sheets: dict[str, Table]) -> bytes:
    """Several tables in one CSV: each under a line naming it, separated by a blank line."""
    out = io.StringIO()
    writer = csv.writer(out)
    for index, (name, table) in enumerate(sheets.items()):
        if index:
            writer.writerow([])
        writer.writerow([f"# {name}"])
        writer.writerow(table.headers)
        for row in table.rows:
            writer.writerow([_cell(_text(v, k)) for v, k in zip(row, table.types, strict=True)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="E8EDF3")
_FORMATS = {
    "money": MONEY_FORMAT,
    "datetime": DATETIME_FORMAT,
    "seconds": SECONDS_FORMAT,
    "date": DATE_FORMAT,
    "float": "0.00",
    "int": "#,##0",
}


def _format_of(value, kind: str) -> str | None:
    if kind == "mixed":  # a summary's value column: a date gets a date format, the rest none
        return DATETIME_FORMAT if isinstance(value, datetime) else None
    return _FORMATS.get(kind)


def _width(value, kind: str) -> int:
    if isinstance(value, datetime | date):
        return _WIDTHS["datetime"]
    if kind in _WIDTHS and value is not None and not isinstance(value, str):
        return _WIDTHS[kind]
    return len(str(value or ""))


def to_xlsx(sheets: dict[str, Table]) -> bytes:
    """Real dates and numbers with formats, a bold frozen header row, widths that fit (capped
    so a long reason does not make a column a screen wide)."""
    workbook = Workbook(write_only=True)
    for name, table in sheets.items():
        sheet = workbook.create_sheet(title=name[:31])
        widths = [max(10, len(h) + 2) for h in table.headers]
        for row in table.rows:
            for i, (value, kind) in enumerate(zip(row, table.types, strict=True)):
                widths[i] = max(widths[i], min(60, _width(value, kind) + 2))
        for i, width in enumerate(widths):
            sheet.column_dimensions[get_column_letter(i + 1)].width = width
        sheet.freeze_panes = "A2"
        header = []
        for text in table.headers:
            cell = WriteOnlyCell(sheet, value=text)
            cell.font, cell.fill = _HEADER_FONT, _HEADER_FILL
            cell.alignment = Alignment(vertical="top")
            header.append(cell)
        sheet.append(header)
        for row in table.rows:
            cells = []
            for value, kind in zip(row, table.types, strict=True):
                cell = WriteOnlyCell(sheet, value=_cell(value))
                number_format = _format_of(value, kind)
                if number_format and value is not None and value != "":
                    cell.number_format = number_format
                cells.append(cell)
            sheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
