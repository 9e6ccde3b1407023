"""Sending: every active rule's events to its recipients, once each, every attempt recorded;
and the daily digest of each inspector's open cases.

A recipient is a user (reached at their e-mail; ``user:<name>`` is who a repeat is judged by,
so a changed address does not resend) or a channel (``channel:<hash of its URL>``, so two rules
naming one channel do not post twice). Nothing a channel does stops the run: a failed send is
recorded and the others go on; the next run retries it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial

from sqlalchemy import Engine

from pipeline.alerts import deliveries, events, messages
from pipeline.alerts.channels import (
    DeliveryError,
    Message,
    SmtpSettings,
    send_email,
    send_to_channel,
)
from pipeline.casework.alert_rules import AlertRule, list_rules, masked_url
from pipeline.casework.users import CASE_WORKER_ROLES, Contact, contacts
from pipeline.reference.freshness import silent_points
from pipeline.store.failures import failures_since

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    key: str  # who, as a repeat is judged: "user:budi", "channel:3f2a..."
    address: str  # where: an e-mail address, or the channel's masked URL
    channel: str  # email | apprise
    url: str = field(default="", repr=False)  # the channel's URL (may hold a token)


@dataclass
class SendResult:
    """What a run did: attempts sent and failed, subjects already sent (not repeated), and the
    users a rule names who have no e-mail address (nothing can reach them)."""

    sent: int = 0
    failed: int = 0
    already_sent: int = 0
    no_address: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # (subject, recipient) tried in this run: two rules reaching one recipient try once a run
    tried: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "already_sent": self.already_sent,
            "no_address": sorted(set(self.no_address)),
            "errors": self.errors[:20],
        }


def _user(contact: Contact) -> Recipient:
    return Recipient(f"user:{contact.username}", contact.email or "", "email")


def channel_recipient(url: str) -> Recipient:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Recipient(f"channel:{digest}", masked_url(url), "apprise", url)


def recipients_of(rule: AlertRule, people: list[Contact], result: SendResult) -> list[Recipient]:
    """The rule's target as recipients; users without an address are noted in ``result``."""
    if rule.to_channel:
        return [channel_recipient(rule.to_channel)]
    chosen = [
        p for p in people if (rule.to_role and p.role == rule.to_role) or p.username == rule.to_user
    ]
    result.no_address.extend(p.username for p in chosen if not p.email)
    return [_user(p) for p in chosen if p.email]


def _deliver(smtp: SmtpSettings, recipient: Recipient, message: Message) -> None:
    if recipient.channel == "email":
        send_email(smtp, recipient.address, message)
    else:
        send_to_channel(recipient.url, message)


def _send_once(
    engine: Engine,
    smtp: SmtpSettings,
    result: SendResult,
    *,
    rule_id: int | None,
    what: str,
    subject_key: str,
    recipient: Recipient,
    message: Message,
    now: Callable[[], datetime],
) -> None:
    if (subject_key, recipient.key) in result.tried:
        return
    result.tried.add((subject_key, recipient.key))
    delivery_id = deliveries.claim(
        engine,
        rule_id=rule_id,
        what=what,
        subject_key=subject_key,
        recipient=recipient.key,
        address=recipient.address,
        channel=recipient.channel,
        title=message.title,
        now=now(),
    )
    if delivery_id is None:
        result.already_sent += 1
        return
    error = None
    try:
        _deliver(smtp, recipient, message)
    except DeliveryError as exc:
        error = str(exc)
    # A channel library's own failure (a plugin's bug, an encoding it cannot take) must not
    # end the run nor lose the record: it is a failed attempt like any other, retried next run.
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    deliveries.finish(engine, delivery_id, error=error, now=now())
    if error is None:
        result.sent += 1
    else:
        result.failed += 1
        result.errors.append(f"{subject_key} -> {recipient.address}: {error}")
        log.warning("alert %s to %s failed: %s", subject_key, recipient.address, error)


def _subjects(engine: Engine, rule: AlertRule, as_of: datetime, lang: str, review_url: str):
    """(subject_key, its message made on demand) for each event the rule alerts about as of
    ``as_of``: most subjects of an hourly run were sent before, and are not worded again."""
    if rule.event == "case":
        for case in events.cases_at_severity(
            engine, rule.min_severity or "high", opened_since=rule.created_at, as_of=as_of
        ):
            yield f"case:{case.case_id}", partial(messages.case_message, case, lang, review_url)
    elif rule.event == "silence":
        # One episode per point and last sale: a new sale ends it, the next silence is another.
        for point in silent_points(engine, as_of=as_of, min_open_hours=rule.silent_hours or 1):
            episode = point.last_txn_at.isoformat() if point.last_txn_at else "none"
            yield (
                f"silence:{point.point_id}:{episode}",
                partial(messages.silence_message, point, lang),
            )
    elif rule.event == "failure":
        for failure in failures_since(engine, rule.created_at):
            yield f"failure:{failure.failure_id}", partial(messages.failure_message, failure, lang)


def send_alerts(
    engine: Engine,
    smtp: SmtpSettings,
    *,
    as_of: datetime,
    lang: str,
    review_url: str = "",
    events_to_send: tuple[str, ...] = ("case", "silence", "failure"),
    now: Callable[[], datetime],
) -> SendResult:
    """Send what every active rule (of ``events_to_send``) alerts about as of ``as_of`` to its
    recipients, each subject once per recipient. ``now`` stamps the records (the wall clock of
    the attempts, not the data time ``as_of``)."""
    result = SendResult()
    deliveries.recover_abandoned(engine, now=now())
    people = contacts(engine)
    for rule in list_rules(engine, active_only=True):
        if rule.event not in events_to_send:
            continue
        targets = recipients_of(rule, people, result)
        if not targets:
            continue
        done = deliveries.settled(engine, rule.event)
        for subject_key, make_message in _subjects(engine, rule, as_of, lang, review_url):
            message = None
            for recipient in targets:
                if (subject_key, recipient.key) in done:
                    result.already_sent += 1
                    continue
                message = message or make_message()
                _send_once(
                    engine,
                    smtp,
                    result,
                    rule_id=rule.rule_id,
                    what=rule.event,
                    subject_key=subject_key,
                    recipient=recipient,
                    message=message,
                    now=now,
                )
    return result


def send_digests(
    engine: Engine,
    smtp: SmtpSettings,
    *,
    day: date,
    lang: str,
    review_url: str = "",
    now: Callable[[], datetime],
) -> SendResult:
    """E-mail each inspector (auditor, supervisor) with an address the undecided cases assigned
    to them, overdue ones (due before ``day``) marked; once per inspector and day. An inspector
    with no open case gets nothing."""
    result = SendResult()
    deliveries.recover_abandoned(engine, now=now())
    for person in contacts(engine):
        if person.role not in CASE_WORKER_ROLES:
            continue
        open_cases = events.open_cases_of(engine, person.username)
        if not open_cases:
            continue
        if not person.email:
            result.no_address.append(person.username)
            continue
        message = messages.digest_message(person.username, open_cases, day, lang, review_url)
        _send_once(
            engine,
            smtp,
            result,
            rule_id=None,
            what="digest",
            subject_key=f"digest:{day.isoformat()}",
            recipient=_user(person),
            message=message,
            now=now,
        )
    return result
