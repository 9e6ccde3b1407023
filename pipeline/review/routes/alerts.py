"""The alert rule set: supervisors see whom each rule reaches and the latest sends, add rules
and switch them on or off (``eincome alerts rules`` does the same)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from pipeline.casework import alert_rules
from pipeline.casework.users import ROLES, User
from pipeline.review import queries
from pipeline.review.deps import csrf_protect, engine_of, flash, need, render, see_other
from pipeline.review.i18n import N_, TranslatableInputError

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/alerts")
def alerts_page(request: Request, user: User = need("alerts.manage")):
    return render(
        request,
        "alerts.html",
        user=user,
        events=alert_rules.EVENTS,
        severities=alert_rules.SEVERITIES,
        roles=ROLES,
        default_hours=alert_rules.SILENT_OPEN_HOURS,
        **queries.alerts_view(engine_of(request)),
    )


def _hours(value: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise TranslatableInputError("silent hours %(value)r is not a whole number", value=value)
    return int(text)


@router.post("/alerts/rules")
def alerts_add_rule(
    request: Request,
    name: str = Form(""),
    event: str = Form(""),
    severity: str = Form(""),
    silent_hours: str = Form(""),
    to_role: str = Form(""),
    to_user: str = Form(""),
    to_channel: str = Form(""),
    user: User = need("alerts.manage"),
):
    rule = alert_rules.add_rule(
        engine_of(request),
        name,
        event,
        min_severity=severity or None if event == "case" else None,
        silent_hours=_hours(silent_hours) if event == "silence" else None,
        to_role=to_role or None,
        to_user=to_user or None,
        to_channel=to_channel or None,
        actor=user.username,
    )
    flash(request, N_("Rule %(name)s added."), name=rule.name)
    return see_other("/alerts")


@router.post("/alerts/rules/switch")
def alerts_switch_rule(
    request: Request,
    name: str = Form(""),
    active: str = Form(""),
    user: User = need("alerts.manage"),
):
    if active not in ("0", "1"):
        raise TranslatableInputError("active %(value)r is not 0 or 1", value=active)
    rule = alert_rules.set_rule_active(engine_of(request), name, active == "1")
    if rule.active:
        flash(request, N_("Rule %(name)s switched on."), name=rule.name)
    else:
        flash(request, N_("Rule %(name)s switched off."), name=rule.name)
    return see_other("/alerts")
