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

from babel.dates import format_date, format_interval, format_skeleton, format_time
from babel.numbers import format_decimal

from pipeline.core.money import rupiah, rupiah_short
from pipeline.core.times import DEFAULT_TIMEZONE
from pipeline.review.i18n import translations

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
    "local_datetime",
    "money",
    "money_short",
    "number",
    "percent",
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
    }
