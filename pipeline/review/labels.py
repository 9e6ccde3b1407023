"""The names the review app gives the domain's codes (statuses, patterns, severities, revenue
types, what a shortfall measures, audit actions), as msgids the catalog translates.

The codes stay what the database and the exports' machine columns hold; only their face is
translated, through the ``label`` template filter and ``label()`` here.
"""

from __future__ import annotations

from pipeline.review.i18n import N_, translations

LABELS = {
    # case status and the decisions (casework.audit.STATUS_LABELS, DECISIONS)
    "open": N_("open"),
    "confirmed": N_("confirmed leakage"),
    "false_alarm": N_("false alarm"),
    "field_check": N_("needs field check"),
    "cleared": N_("cleared by late data"),  # closed by detection.late_data
    # severities
    "high": N_("high"),
    "medium": N_("medium"),
    "low": N_("low"),
    # detector patterns (core.leakage_kinds)
    "under_reporting": N_("under-reporting"),
    "device_off": N_("device off while open"),
    "cash_skimming": N_("cash skimming"),
    "void_abuse": N_("void abuse"),
    "ticket_shaving": N_("ticket shaving"),
    "split_transactions": N_("split transactions"),
    # reconciliation gaps (reconciliation.gaps.KINDS)
    "declared_below_recorded": N_("declared below recorded"),
    "deposit_below_declared": N_("deposit below declared tax"),
    "deposit_below_recorded": N_("cash handed in below recorded"),
    "flat_deposits": N_("flat deposits"),
    "late_deposit": N_("late deposit"),
    "unmatched_deposit": N_("unmatched deposit"),
    "no_deposit": N_("no deposit"),
    # revenue types (reference.points.REVENUE_TYPES)
    "parking": N_("parking"),
    "market": N_("market"),
    "restaurant_tax": N_("restaurant tax"),
    "hotel_tax": N_("hotel tax"),
    "entertainment_tax": N_("entertainment tax"),
    "other": N_("other"),
    # what a shortfall measures (core.leakage_kinds.SHORTFALL_MEASURES)
    "sales_not_recorded": N_("sales not recorded"),
    "tax_not_declared": N_("tax not declared"),
    "tax_not_deposited": N_("tax not deposited"),
    "cash_not_handed_in": N_("cash not handed in"),
    "unclassified_gap": N_("reconciliation gap (unclassified)"),
    "no_shortfall": N_("no money missing"),
    # origins and audit actions
    "detector": N_("detector"),
    "reconciliation": N_("reconciliation"),
    "decide": N_("decision"),
    "reopen": N_("reopened"),
    "assign": N_("assigned"),
    "note": N_("note"),
    "clear": N_("closed by the pipeline"),
    "due": N_("due day set"),
    "recover": N_("money recovered"),
    "attach": N_("evidence attached"),
    # alert rule events (casework.alert_rules.EVENTS)
    "case": N_("case"),
    "silence": N_("silent point"),
    "failure": N_("pipeline failure"),
    # changes to revenue targets (reference.targets)
    "target_load": N_("loaded from a file"),
    "target_set": N_("set"),
    "target_remove": N_("removed"),
    "total": N_("total"),
    # roles
    "auditor": N_("auditor"),
    "supervisor": N_("supervisor"),
    "ops": N_("operations"),
    "viewer": N_("viewer"),
    # transaction statuses and payment methods
    "paid": N_("paid"),
    "void": N_("void"),
    "refund": N_("refund"),
    "cash": N_("cash"),
    "card": N_("card"),
    "qris": N_("QRIS"),
    "ewallet": N_("e-wallet"),
    "transfer": N_("bank transfer"),
    # changes to users (casework.users.user_trail actions)
    "user_created": N_("created"),
    "user_role": N_("role changed"),
    "user_password": N_("password reset"),
    "user_deactivated": N_("deactivated"),
    "user_reactivated": N_("reactivated"),
    "user_email": N_("e-mail address set"),
    # queue orders (review.queries.SORTS)
    "newest": N_("newest day, largest shortfall first"),
    "shortfall": N_("largest shortfall first"),
    "recent": N_("most recent first"),
    # rights (casework.users.RIGHTS), as the 403 page says what the role may not do
    "dashboard.view": N_("see the dashboard"),
    "cases.view": N_("see cases"),
    "cases.decide": N_("decide cases"),
    "cases.assign": N_("assign cases"),
    "cases.export": N_("export cases"),
    "cases.reopen": N_("reopen decided cases"),
    "ops.view": N_("see the operations page"),
    "quarantine.release": N_("release quarantined rows"),
    "users.manage": N_("manage users"),
    "keys.manage": N_("manage push API keys"),
    "alerts.manage": N_("manage alert rules"),
    "targets.manage": N_("manage revenue targets"),
}


def label(code: str | None, lang: str) -> str:
    """The face of ``code`` in ``lang``; an unknown code is shown as it is, underscores spaced."""
    if code is None:
        return "–"
    msgid = LABELS.get(code)
    if msgid is None:
        return str(code).replace("_", " ")
    return translations(lang).gettext(msgid)
