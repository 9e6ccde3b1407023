"""The alert rule set: what reaches whom. The one writer of ``alert_rules``.

A rule names an event, its threshold and one target:

* ``case``: a case opened at or above ``min_severity`` (low | medium | high);
* ``silence``: a point silent for ``silent_hours`` whole open hours (``reference.freshness``);
* ``failure``: a pipeline failure (a task or command recorded in ``pipeline_failures``);

to every active user of a role (``to_role``, at their e-mail), one user (``to_user``), or a
chat/webhook channel (``to_channel``, an Apprise URL: ``json://host/path``, ``tgram://...``).
Several targets are several rules. Rules are switched off, not deleted: the deliveries they
made keep pointing at them. A rule alerts what happened after it was made (cases opened,
failures recorded since): what came before is in the queue and on the ops page already.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from pipeline.casework.cases import SEVERITY_RANK
from pipeline.casework.users import ROLES, get_user
from pipeline.core.errors import NotFoundError, UnusableInputError
from pipeline.core.times import HOUR
from pipeline.reference.freshness import LOOKBACK, SILENT_OPEN_HOURS
from pipeline.store.schema import alert_rules

EVENTS = ("case", "silence", "failure")
SEVERITIES = tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__))  # low, medium, high
# The rules migration 0014 seeds (a test holds the two equal): high cases to supervisors, silent
# points and failures to ops - the people who act on each.
DEFAULT_RULES = (
    {"name": "high cases to supervisors", "event": "case", "min_severity": "high",
     "to_role": "supervisor"},
    {"name": "silent points to ops", "event": "silence", "silent_hours": SILENT_OPEN_HOURS, "to_role": "ops"},
    {"name": "pipeline failures to ops", "event": "failure", "to_role": "ops"},
)  # fmt: skip
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)


@dataclass(frozen=True)
class AlertRule:
    rule_id: int
    name: str
    event: str
    min_severity: str | None
    silent_hours: int | None
    to_role: str | None
    to_user: str | None
    to_channel: str | None
    active: bool
    created_by: str
    created_at: datetime

    @property
    def threshold(self) -> str:
        """The rule's threshold as the list shows it: 'high', '2 h', or '-'."""
        if self.event == "case":
            return str(self.min_severity)
        if self.event == "silence":
            return f"{self.silent_hours} h"
        return "-"

    @property
    def target(self) -> str:
        """Whom the rule reaches: 'role:ops', 'user:budi', or the channel's masked URL."""
        if self.to_role:
            return f"role:{self.to_role}"
        if self.to_user:
            return f"user:{self.to_user}"
        return masked_url(self.to_channel or "")


def masked_url(url: str) -> str:
    """A channel URL without its secrets (bot tokens, passwords sit after the scheme): the
    scheme and the last path segment, e.g. 'json://…/alerts'."""
    scheme, _, rest = url.partition("://")
    tail = rest.rstrip("/").rsplit("/", 1)[-1] if "/" in rest else ""
    return f"{scheme}://…/{tail}" if tail else f"{scheme}://…"


def _rule(row) -> AlertRule:
    values = row._asdict()
    values["active"] = bool(values["active"])
    return AlertRule(**values)


def _threshold(
    name: str, event: str, min_severity: str | None, silent_hours: int | None
) -> tuple[str | None, int | None]:
    """The rule's threshold, defaulted for its event; refused where it does not fit."""
    if event not in EVENTS:
        raise UnusableInputError.said(
            "rule %(name)r: event %(event)r is not one of %(choices)s",
            name=name,
            event=event,
            choices=", ".join(EVENTS),
        )
    if event == "case":
        min_severity = min_severity or "high"
        if min_severity not in SEVERITIES:
            raise UnusableInputError.said(
                "rule %(name)r: severity %(severity)r is not one of %(choices)s",
                name=name,
                severity=min_severity,
                choices=", ".join(SEVERITIES),
            )
    elif min_severity is not None:
        raise UnusableInputError.said(
            "rule %(name)r: a severity is a threshold of case rules only", name=name
        )
    if event == "silence":
        silent_hours = SILENT_OPEN_HOURS if silent_hours is None else silent_hours
        # The freshness helper counts open hours back a week at most (LOOKBACK).
        most = int(LOOKBACK / HOUR)
        if not 1 <= silent_hours <= most:
            raise UnusableInputError.said(
                "rule %(name)r: silent hours %(hours)r must be between 1 and %(most)s",
                name=name,
                hours=silent_hours,
                most=most,
            )
    elif silent_hours is not None:
        raise UnusableInputError.said(
            "rule %(name)r: silent hours are a threshold of silence rules only", name=name
        )
    return min_severity, silent_hours


def _target(
    engine: Engine, name: str, to_role: str | None, to_user: str | None, to_channel: str | None
) -> dict:
    """Exactly one target: a known role, an existing user, or a URL with a scheme."""
    if len([t for t in (to_role, to_user, to_channel) if t]) != 1:
        raise UnusableInputError.said(
            "rule %(name)r: give exactly one of a role, a user or a channel URL", name=name
        )
    if to_role and to_role not in ROLES:
        raise UnusableInputError.said(
            "rule %(name)r: role %(role)r is not one of %(choices)s",
            name=name,
            role=to_role,
            choices=", ".join(ROLES),
        )
    if to_user:
        to_user = to_user.strip().lower()
        if get_user(engine, to_user) is None:
            raise NotFoundError.said(
                "rule %(name)r: user %(user)r does not exist", name=name, user=to_user
            )
    if to_channel:
        to_channel = to_channel.strip()
        if not _URL.match(to_channel):
            raise UnusableInputError.said(
                "rule %(name)r: channel %(url)r is not a URL (e.g. json://host/path,"
                " tgram://token/chat)",
                name=name,
                url=masked_url(to_channel) if "://" in to_channel else to_channel,
            )
    return {
        "to_role": to_role or None,
        "to_user": to_user or None,
        "to_channel": to_channel or None,
    }


def add_rule(
    engine: Engine,
    name: str,
    event: str,
    *,
    min_severity: str | None = None,
    silent_hours: int | None = None,
    to_role: str | None = None,
    to_user: str | None = None,
    to_channel: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> AlertRule:
    """Add a rule; refuses an unknown event, a threshold that does not fit it, and anything but
    exactly one target (a known role, an existing user, or a URL with a scheme)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise UnusableInputError.said("rule name %(name)r: 1 to 100 characters", name=name)
    min_severity, silent_hours = _threshold(name, event, min_severity, silent_hours)
    values = {
        "name": name,
        "event": event,
        "min_severity": min_severity,
        "silent_hours": silent_hours,
        **_target(engine, name, to_role, to_user, to_channel),
        "active": 1,
        "created_by": actor,
        "created_at": now or datetime.now(UTC),
    }
    try:
        with engine.begin() as connection:
            rule_id = connection.execute(alert_rules.insert().values(**values)).inserted_primary_key
    except IntegrityError:
        raise UnusableInputError.said("rule %(name)r already exists", name=name) from None
    return AlertRule(rule_id=int(rule_id[0]), **{**values, "active": True})


def list_rules(engine: Engine, *, active_only: bool = False) -> list[AlertRule]:
    query = select(alert_rules).order_by(alert_rules.c.rule_id)
    if active_only:
        query = query.where(alert_rules.c.active == 1)
    with engine.connect() as connection:
        return [_rule(row) for row in connection.execute(query)]


def set_rule_active(engine: Engine, name: str, active: bool) -> AlertRule:
    """Switch a rule on or off (by name); what it already sent stays recorded."""
    with engine.begin() as connection:
        done = connection.execute(
            update(alert_rules).where(alert_rules.c.name == name).values(active=int(active))
        )
        if not done.rowcount:
            raise NotFoundError.said("alert rule %(name)r does not exist", name=name)
        return _rule(
            connection.execute(select(alert_rules).where(alert_rules.c.name == name)).one()
        )
