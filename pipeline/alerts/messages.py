"""Alerts and the daily digest as people read them, in their language: the review app's catalog
and its id-ID formats (rupiah as 'Rp 1.234.567', days as '1 Des 2025', the point's local time),
so an e-mail says what the case page says. This is why the alerts package sits above
``review`` in the layers: the words and the number formats live there."""

from __future__ import annotations

from datetime import date

from pipeline.alerts.channels import Message
from pipeline.alerts.events import CaseToAlert
from pipeline.reference.freshness import PointFreshness
from pipeline.review.formats import (
    day_text,
    local_datetime,
    money,
    number,
    reason_text,
    span_text,
    zone_name,
)
from pipeline.review.i18n import translations
from pipeline.review.labels import label
from pipeline.store.failures import Failure


def _link(review_url: str, path: str) -> str:
    return f"{review_url.rstrip('/')}{path}" if review_url else ""


def case_message(case: CaseToAlert, lang: str, review_url: str = "") -> Message:
    """A case at or above a rule's severity: number, point, pattern, span, rupiah, reasons."""
    _ = translations(lang).gettext
    values = {
        "case_id": case.case_id,
        "severity": label(case.severity, lang),
        "point": f"{case.point_name} ({case.point_id})",
    }
    title = _("Case #%(case_id)s, %(severity)s severity: %(point)s") % values
    lines = [
        title,
        "",
        _("Pattern: %(kind)s") % {"kind": label(case.kind, lang)},
        _("When: %(span)s") % {"span": span_text(case.start_at, case.end_at, case.timezone, lang)},
        _("At stake: %(shortfall)s") % {"shortfall": money(case.shortfall_rp)},
        _("Why: %(reasons)s")
        % {"reasons": reason_text(case.reason_parts, case.reasons, lang, case.timezone)},
    ]
    if case.assignee:
        lines.append(_("Assigned to: %(user)s") % {"user": case.assignee})
    link = _link(review_url, f"/cases/{case.case_id}")
    if link:
        lines += ["", _("Open the case: %(link)s") % {"link": link}]
    return Message(title, "\n".join(lines) + "\n")


def silence_message(point: PointFreshness, lang: str) -> Message:
    """A point silent in its open hours: which, since when, for how long."""
    _ = translations(lang).gettext
    values = {
        "point": f"{point.name} ({point.point_id})",
        "hours": number(point.silent_open_hours),
    }
    if point.at_least:  # silent for all of the look-back, or never sold
        title = _("No sales from %(point)s for at least %(hours)s open hours") % values
    else:
        title = _("No sales from %(point)s for %(hours)s open hours") % values
    if point.last_txn_at is None:
        since = _("no sale recorded yet")
    else:
        since = _("last sale: %(when)s %(zone)s") % {
            "when": local_datetime(point.last_txn_at, point.timezone, lang),
            "zone": zone_name(point.timezone),
        }
    body = [
        title,
        "",
        since,
        _("Check the device and its connection, or whether the point is closed."),
    ]
    return Message(title, "\n".join(body) + "\n")


def failure_message(failure: Failure, lang: str) -> Message:
    """A pipeline failure: where, when, the error (the task log has the rest)."""
    _ = translations(lang).gettext
    title = _("Pipeline failure: %(where)s") % {"where": failure.where}
    body = [
        title,
        "",
        _("When: %(when)s %(zone)s")
        % {"when": local_datetime(failure.at, None, lang), "zone": zone_name(None)},
        _("Run: %(run)s") % {"run": failure.run_id or "–"},
        _("Error: %(error)s") % {"error": failure.error},
    ]
    return Message(title, "\n".join(body) + "\n")


def digest_message(
    username: str, open_cases: list, day: date, lang: str, review_url: str = ""
) -> Message:
    """An inspector's open cases on ``day``, overdue ones marked and first."""
    _ = translations(lang).gettext
    overdue = [c for c in open_cases if c.due_on is not None and c.due_on < day]
    title = _("Your open cases on %(day)s: %(count)s, %(overdue)s overdue") % {
        "day": day_text(day, lang),
        "count": number(len(open_cases)),
        "overdue": number(len(overdue)),
    }
    lines = [_("Hello %(user)s,") % {"user": username}, "", title, ""]
    for case in sorted(open_cases, key=lambda c: c not in overdue):
        mark = _("OVERDUE") + " " if case in overdue else ""
        due = (
            _("due %(day)s") % {"day": day_text(case.due_on, lang)}
            if case.due_on
            else _("no due day")
        )
        lines.append(
            f"- {mark}#{case.case_id} {case.point_name} ({case.point_id}),"
            f" {label(case.kind, lang)}, {label(case.severity, lang)},"
            f" {money(case.shortfall_rp)}, {due}"
        )
        link = _link(review_url, f"/cases/{case.case_id}")
        if link:
            lines.append(f"  {link}")
    return Message(title, "\n".join(lines) + "\n")
