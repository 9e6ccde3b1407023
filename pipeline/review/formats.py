"""How the review app writes numbers, money, percentages, dates and case spans: the one place.

Numbers and money are always written the Indonesian way (``1.234.567``, ``12,5%``), whatever the
page language: the reasons the detector and reconciliation write, the CLI and the exports already
use that grouping, and one page must not show two. Month and weekday names follow the page
language (``1 Des 2025`` / ``1 Dec 2025``); times use the 24-hour clock of CLDR's id locale
(``06.00``). Every time is shown in the zone it happened in, and that zone is named (WIB).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from numbers import Real
from zoneinfo import ZoneInfo

from babel.dates import (
    format_date,
    format_interval,
    format_skeleton,
    format_time,
    get_day_names,
)
from babel.numbers import format_decimal

from pipeline.core.leakage_kinds import SHORTFALL_MEASURES
from pipeline.core.money import rupiah, rupiah_short
from pipeline.core.phrases import SEPARATOR, Phrase, kind_of, loads
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.review.i18n import translations
from pipeline.review.labels import label

NUMBER_LOCALE = "id_ID"
MISSING = "–"
# Indonesia's three zones by the abbreviations people use; any other zone by its IANA name.
ZONE_ABBREVIATIONS = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Jayapura": "WIT",
}

__all__ = [
    "dashboard_texts",
    "MISSING",
    "day_text",
    "event_note",
    "local_datetime",
    "money",
    "money_short",
    "number",
    "percent",
    "phrase_text",
    "reason_lines",
    "reason_text",
    "reference_lines",
    "signed_percent",
    "span_text",
    "zone_name",
]


def _zone(tz_name: str | None) -> ZoneInfo:
    return ZoneInfo(tz_name or DEFAULT_TIMEZONE)


def _locale(lang: str) -> str:
    return "id_ID" if lang == "id" else "en_GB"


def zone_name(tz_name: str | None) -> str:
    """'WIB' for Asia/Jakarta; other zones by their IANA name."""
    name = tz_name or DEFAULT_TIMEZONE
    return ZONE_ABBREVIATIONS.get(name, name)


def money(value: Real | None) -> str:
    """Whole rupiah: 'Rp 1.234.567' (core.money's face, so the CLI and the pages agree)."""
    return rupiah(value)


def money_short(value: Real | None) -> str:
    return rupiah_short(value)


def number(value: Real | None, digits: int = 0) -> str:
    if value is None:
        return MISSING
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=NUMBER_LOCALE)


def percent(fraction: float | None, digits: int = 0) -> str:
    """0.125 -> '13%' (digits=0) or '12,5%' (digits=1); None -> '–'."""
    if fraction is None:
        return MISSING
    return number(100 * fraction, digits) + "%"


def signed_percent(points: float | None, digits: int = 1) -> str:
    """A change already in percent points: 12.5 -> '+12,5%', -3 -> '-3,0%'."""
    if points is None:
        return MISSING
    sign = "+" if points > 0 else "-" if points < 0 else ""
    return sign + number(abs(points), digits) + "%"


def local_datetime(
    moment: datetime | None, tz_name: str | None, lang: str, *, seconds: bool = False
) -> str:
    """'1 Des 2025 06.00' in the zone ``tz_name`` (the zone is named once per table, not here)."""
    if moment is None:
        return MISSING
    local = moment.astimezone(_zone(tz_name))
    clock = format_time(local, "HH.mm.ss" if seconds else "HH.mm", locale=_locale(lang))
    return f"{format_date(local, 'medium', locale=_locale(lang))} {clock}"


def day_text(day, lang: str, *, weekday: bool = False) -> str:
    """A calendar day: '1 Des 2025', or 'Sen, 1 Des 2025' with the weekday."""
    return format_skeleton("yMMMEd" if weekday else "yMMMd", day, locale=_locale(lang))


def span_text(start: datetime, end: datetime, tz_name: str | None, lang: str) -> str:
    """A case's span [start, end) as a person reads it, both ends with their dates.

    Whole local days (reconciliation periods) are written as days: 'Desember 2025' for one
    calendar month, '1–7 Des 2025' for a run of days. Hours within one day: '1 Des 2025
    06.00–22.00'. Anything longer: '1 Des 2025 06.00 – 7 Des 2025 22.00'. The zone is appended.
    """
    tz = _zone(tz_name)
    loc = _locale(lang)
    first, after = start.astimezone(tz), end.astimezone(tz)
    zone = zone_name(tz_name)
    if first.time() == time(0) and after.time() == time(0) and after > first:
        last_day = (after - timedelta(days=1)).date()
        if first.day == 1 and (last_day + timedelta(days=1)).day == 1:  # whole months
            if first.month == last_day.month:
                return format_skeleton("yMMMM", first, locale=loc)
            return format_interval(first.date(), last_day, "yMMM", locale=loc)
        if first.date() == last_day:
            return format_skeleton("yMMMd", first, locale=loc)
        return format_interval(first.date(), last_day, "yMMMd", locale=loc)
    last = after - timedelta(seconds=1)
    if first.date() == last.date() or after == first + timedelta(hours=1):
        # A span that ends at midnight ends at 24.00 of its day, not at 00.00.
        until = "24.00" if after.time() == time(0) else format_time(after, "HH.mm", locale=loc)
        clock = format_time(first, "HH.mm", locale=loc) + "–" + until
        return f"{format_date(first, 'medium', locale=loc)} {clock} {zone}"
    return f"{local_datetime(start, tz_name, lang)} – {local_datetime(end, tz_name, lang)} {zone}"


def dashboard_texts(figures: dict, lang: str) -> dict:
    """The dashboard's sentences in ``lang``, for the page and for the live refresh's JSON (the
    script only places them: every word and number format comes from here)."""
    _ = translations(lang).gettext
    day = date.fromisoformat(figures["day"])
    change = figures.get("change")
    return {
        "day": day_text(day, lang, weekday=True),
        "compare_day": day_text(date.fromisoformat(figures["compare_day"]), lang, weekday=True),
        "as_of": _("end of day")
        if figures["as_of"] == "end of day"
        else figures["as_of"].replace(":", "."),
        "zone": zone_name(figures.get("tz")),
        "note": (
            _("No transactions yet today; showing %(day)s, the latest day with data.")
            % {"day": day_text(day, lang)}
            if figures.get("note")
            else ""
        ),
        "total_label": _("Today so far") if figures["is_today"] else _("Day total"),
        "change": (
            _("%(change)s vs last week") % {"change": signed_percent(change)}
            if change is not None
            else _("no comparison")
        ),
        "measures": {m: label(m, lang) for m in SHORTFALL_MEASURES},
        "measure_order": list(SHORTFALL_MEASURES),  # JSON objects lose their order in tojson
        "revenue_types": {r["name"]: label(r["name"], lang) for r in figures["by_revenue_type"]},
    }


def reference_lines(refs: dict, tz_name: str | None, lang: str) -> list[tuple[str, str]]:
    """A reconciliation case's references as (what, where to look) lines a person can follow:
    local dates and times, rupiah, the tax rate as a percentage; nothing in raw UTC ISO."""
    _ = translations(lang).gettext
    lines: list[tuple[str, str]] = []
    figures = refs.get("figures") if isinstance(refs.get("figures"), dict) else {}
    if figures.get("tax_rate") is not None:
        lines.append((_("Tax rate"), percent(figures["tax_rate"], 1)))
    if figures.get("due_date"):
        lines.append((_("Tax due by"), _day_or_text(figures["due_date"], lang)))
    if figures.get("business_days_late") is not None:
        lines.append((_("Business days late"), number(figures["business_days_late"])))
    for ret in refs.get("tax_returns") or []:
        if isinstance(ret, dict):
            lines.append(
                (
                    _("Tax return"),
                    _("%(point)s, period from %(day)s")
                    % {
                        "point": ret.get("point_id", ""),
                        "day": _day_or_text(ret.get("period_start"), lang),
                    },
                )
            )
    if "tax_returns" in refs and not refs.get("tax_returns"):
        lines.append((_("Tax return"), _("none filed")))
    if refs.get("bank_deposits"):
        lines.append((_("Bank lines"), ", ".join(str(x) for x in refs["bank_deposits"])))
    elif "bank_deposits" in refs:
        lines.append((_("Bank lines"), _("none")))
    if figures.get("late_lines"):
        lines.append((_("Late bank lines"), ", ".join(str(x) for x in figures["late_lines"])))
    txns = refs.get("transactions") if isinstance(refs.get("transactions"), dict) else None
    if txns:
        where = txns.get("point_id") or ", ".join(txns.get("point_ids") or [])
        who = txns.get("operator_id")
        text = _("%(where)s, %(span)s") % {
            "where": where,
            "span": _span_of(txns.get("from"), txns.get("to"), tz_name, lang),
        }
        if who:
            text += " · " + _("operator %(who)s") % {"who": who}
        if txns.get("payment_method"):
            text += " · " + translations(lang).gettext(txns["payment_method"])
        lines.append((_("Transactions"), text))
    deposits = refs.get("collector_deposits")
    if isinstance(deposits, dict) and deposits.get("days"):
        days = [_day_or_text(d, lang) for d in deposits["days"]]
        lines.append((_("Cash handed in on"), ", ".join(days)))
    return lines


def _day_or_text(value, lang: str) -> str:
    try:
        return day_text(date.fromisoformat(str(value)), lang)
    except ValueError:
        return str(value)


def _span_of(start, end, tz_name: str | None, lang: str) -> str:
    try:
        return span_text(
            datetime.fromisoformat(str(start)), datetime.fromisoformat(str(end)), tz_name, lang
        )
    except (TypeError, ValueError):
        return f"{start} – {end}"


# ----------------------------------------------------------------------------- reasons


def reason_lines(parts: str | None, text: str | None, lang: str, tz_name: str | None = None):
    """A stored reason as the lines a reader reads: its phrases (``reason_parts`` JSON) said in
    ``lang``; a row written before reasons were phrases shows its text, split at '; '."""
    phrases = loads(parts)
    if phrases is None:
        return [t.strip() for t in (text or "").split(";") if t.strip()]
    return [phrase_text(p, lang, tz_name) for p in phrases]


def reason_text(parts: str | None, text: str | None, lang: str, tz_name: str | None = None):
    """The same, as one line (exports, the command line)."""
    return SEPARATOR.join(reason_lines(parts, text, lang, tz_name))


def event_note(event, lang: str, tz_name: str | None = None) -> str:
    """A trail entry's note: a person's words as written; a pipeline's (``note_parts``) in
    ``lang``."""
    parts = getattr(event, "note_parts", None)
    return reason_text(parts, event.note, lang, tz_name) if parts else (event.note or "")


def phrase_text(part: Phrase, lang: str, tz_name: str | None = None) -> str:
    """One phrase in ``lang``: its msgid through the catalog, each value formatted by its kind
    (``core.phrases``) the way every page formats money, counts, percentages and days."""
    zone = part.params.get("tz") or tz_name
    values = {name: _phrase_value(name, v, lang, zone) for name, v in part.params.items()}
    if not values:
        return translations(lang).gettext(part.msgid)
    try:
        return translations(lang).gettext(part.msgid) % values
    except (KeyError, ValueError, TypeError):  # a translation that lost a placeholder
        return part.msgid % values


def _phrase_value(name: str, value, lang: str, tz_name: str | None) -> str:
    if value is None:
        return MISSING
    try:
        return _PHRASE_VALUES.get(kind_of(name), _plain_value)(value, lang, tz_name, name)
    except (TypeError, ValueError, KeyError, IndexError):  # a value not of its kind: as it is
        return str(value)


def _plain_value(value, lang, tz_name, name) -> str:
    return zone_name(str(value)) if name == "tz" else str(value)


def _slot_value(value, lang, tz_name, name) -> str:
    """'Tue 10:00' (the detector's hour of the week) -> 'Sel 10.00'."""
    weekday, clock = str(value).split(" ", 1)
    index = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun").index(weekday)
    names = get_day_names("abbreviated", locale=_locale(lang))
    return f"{names[index]} {clock.replace(':', '.')}"


def _days_value(value, lang, tz_name, name) -> str:
    first, last = (date.fromisoformat(str(v)) for v in value)
    if first == last:
        return day_text(first, lang)
    return format_interval(first, last, "yMMMd", locale=_locale(lang))


def _kinds_value(value, lang, tz_name, name) -> str:
    hours = translations(lang).gettext("%(n)s h")
    return ", ".join(f"{label(code, lang)} {hours % {'n': number(n)}}" for code, n in value)


def _phrase_part(value, lang, tz_name, name) -> str:
    return phrase_text(Phrase.from_json(value), lang, tz_name)


_PHRASE_VALUES = {
    "rp": lambda v, *_: money(v),
    "pct": lambda v, *_: percent(float(v)),
    "n": lambda v, *_: number(float(v)),
    "avg": lambda v, *_: number(float(v), 1),
    "day": lambda v, lang, *_: day_text(date.fromisoformat(str(v)), lang),
    "days": _days_value,
    "month": lambda v, lang, *_: format_skeleton(
        "yMMMM", date.fromisoformat(f"{v}-01"), locale=_locale(lang)
    ),
    "at": lambda v, lang, tz, _: local_datetime(datetime.fromisoformat(str(v)), tz, lang),
    "slot": _slot_value,
    "kind": lambda v, lang, *_: label(str(v), lang),
    "kinds": _kinds_value,
    "part": _phrase_part,
    "parts": lambda v, lang, tz, _: "; ".join(
        phrase_text(Phrase.from_json(p), lang, tz) for p in v
    ),
}
