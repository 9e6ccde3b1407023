"""The alerts page: the rule set with whom each rule reaches, and the latest send attempts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from pipeline.casework.alert_rules import AlertRule, list_rules
from pipeline.casework.users import contacts
from pipeline.store.schema import alert_deliveries

RECENT_SENDS = 50


@dataclass(frozen=True)
class RuleView:
    rule: AlertRule
    reaches: list[str]  # usernames with an e-mail address (a channel rule: empty)
    unreachable: list[str]  # usernames the rule names who have none


def alerts_view(engine: Engine) -> dict:
    """Rules (each with the users it reaches and those it cannot) and the latest attempts."""
    people = contacts(engine)
    rules = []
    for rule in list_rules(engine):
        named = [p for p in people if p.role == rule.to_role or p.username == rule.to_user]
        rules.append(
            RuleView(
                rule,
                [p.username for p in named if p.email],
                [p.username for p in named if not p.email],
            )
        )
    d = alert_deliveries
    query = select(d).order_by(d.c.started_at.desc(), d.c.delivery_id.desc()).limit(RECENT_SENDS)
    with engine.connect() as connection:
        sends = [row._asdict() for row in connection.execute(query)]
    return {"rules": rules, "sends": sends}
