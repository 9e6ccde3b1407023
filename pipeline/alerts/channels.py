"""How an alert leaves: e-mail over SMTP (the standard library) and chat/webhook channels through
Apprise (one URL per channel: ``json://`` and ``form://`` webhooks, ``tgram://`` Telegram,
``slack://``, WhatsApp gateways...; the ``alerts`` extra).

Both raise ``DeliveryError`` with a message a person can act on; the sender records it with the
attempt and tries again next run.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pipeline.core.settings import Settings

MISSING_EXTRA = (
    "chat/webhook channels need the 'alerts' extra (apprise is not installed):"
    " pip install 'eincome[alerts]'"
)


class DeliveryError(Exception):
    """A send that did not go through; the message says why (recorded with the attempt)."""


@dataclass(frozen=True)
class Message:
    """One alert as a person reads it: a subject line and a plain-text body."""

    title: str
    body: str


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty: e-mail is off
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = "eincome@localhost"
    starttls: bool = True
    timeout_seconds: float = 20.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            sender=settings.smtp_from,
            starttls=bool(settings.smtp_starttls),
        )


def send_email(smtp: SmtpSettings, to_address: str, message: Message) -> None:
    """Send ``message`` to ``to_address`` through the configured SMTP server."""
    if not smtp.host:
        raise DeliveryError("e-mail is not configured: set EINCOME_SMTP_HOST")
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = smtp.sender
    mail["To"] = to_address
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    mail.set_content(message.body)  # UTF-8 text: Indonesian words, "Rp 1.234.567"
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as server:
            if smtp.starttls:
                server.starttls(context=ssl.create_default_context())
            if smtp.user:
                server.login(smtp.user, smtp.password)
            server.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"SMTP {smtp.host}:{smtp.port} to {to_address}: {type(exc).__name__}: {exc}"
        ) from None


def send_to_channel(url: str, message: Message) -> None:
    """Post ``message`` to an Apprise channel URL."""
    try:
        import apprise
    except ModuleNotFoundError:
        raise DeliveryError(MISSING_EXTRA) from None
    from pipeline.casework.alert_rules import masked_url

    channel = apprise.Apprise()
    if not channel.add(url):
        raise DeliveryError(f"channel {masked_url(url)}: not a URL Apprise knows")
    # Apprise reports why a post failed only in its log: keep those lines for the record.
    with apprise.LogCapture(level=apprise.logging.WARNING, fmt="%(message)s") as log:
        delivered = channel.notify(title=message.title, body=message.body)
        said = " ".join(line.strip() for line in log.getvalue().splitlines() if line.strip())
    if not delivered:
        raise DeliveryError(f"channel {masked_url(url)}: {said or 'not delivered'}")
