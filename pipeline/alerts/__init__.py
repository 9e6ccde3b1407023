"""Alerts that reach people without them opening the app.

High-severity cases, points silent in their open hours and pipeline failures go to the people a
rule names (``casework.alert_rules``: what, threshold, to whom; it sits lower, with the other
casework the review app manages, so its /alerts page can manage the rules too) by e-mail or to a chat/webhook channel
(``channels``: SMTP, Apprise), worded in their language (``messages``), each subject once per
recipient, every attempt recorded (``deliveries``); inspectors get a daily digest of their open
cases (``run.send_digests``). The hourly detect DAG sends after scoring; the daily reconcile DAG
sends the digest; ``eincome alerts send|digest`` does the same by hand.

It sits above ``review`` in the layers because the words and the id-ID number formats an alert
is written in live there (the catalog, ``review.formats``); it reads cases, users and failures
through their owners' modules and writes only its two tables.
"""

from pipeline.alerts.channels import DeliveryError, Message, SmtpSettings
from pipeline.alerts.deliveries import Delivery, recent_deliveries
from pipeline.alerts.run import SendResult, send_alerts, send_digests
from pipeline.casework.alert_rules import (
    DEFAULT_RULES,
    EVENTS,
    AlertRule,
    add_rule,
    list_rules,
    set_rule_active,
)

__all__ = [
    "DEFAULT_RULES",
    "EVENTS",
    "AlertRule",
    "Delivery",
    "DeliveryError",
    "Message",
    "SendResult",
    "SmtpSettings",
    "add_rule",
    "list_rules",
    "recent_deliveries",
    "send_alerts",
    "send_digests",
    "set_rule_active",
]
