"""Commands for alerts: `eincome alerts rules list|add|enable|disable`, `eincome alerts send`,
`eincome alerts digest`, `eincome alerts history`. The hourly detect DAG and the daily reconcile
DAG run the same `send` and `digest` (pipeline.orchestration)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import typer

from pipeline.cli.common import moment_option, runtime, say
from pipeline.core.errors import UnusableInputError

alerts_app = typer.Typer(
    help="Alerts by e-mail and chat/webhook: the rule set, sending, the daily digest, the record.",
    no_args_is_help=True,
)
rules_app = typer.Typer(help="The alert rule set: what, threshold, to whom.", no_args_is_help=True)
alerts_app.add_typer(rules_app, name="rules")


def _when(value: str | None, option: str) -> datetime:
    if value is None:
        return datetime.now(UTC)  # the CLI is an edge: here "now" is the moment judged
    return moment_option(value, option).astimezone(UTC)


def _day(value: str | None) -> date:
    if value is None:
        from zoneinfo import ZoneInfo

        from pipeline.core.times import DEFAULT_TIMEZONE

        return datetime.now(ZoneInfo(DEFAULT_TIMEZONE)).date()  # the regency's today
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UnusableInputError(
            say("--%(name)s %(text)r is not a date written YYYY-MM-DD", name="day", text=value)
        ) from None


@rules_app.command("list")
def rules_list() -> None:
    """List the rules: name, event, threshold, to whom, on/off."""
    from pipeline.alerts import list_rules

    for rule in list_rules(runtime().engine):
        state = say("active") if rule.active else say("inactive")
        typer.echo(f"{rule.name}\t{rule.event}\t{rule.threshold}\t{rule.target}\t{state}")


@rules_app.command("add")
def rules_add(
    name: str = typer.Argument(..., help="A name for the rule (unique)."),
    event: str = typer.Option(..., "--event", help="case | silence | failure"),
    severity: str = typer.Option(
        None, "--severity", help="case rules: the lowest severity alerted (default high)."
    ),
    silent_hours: int = typer.Option(
        None, "--silent-hours", help="silence rules: whole open hours without a sale (default 2)."
    ),
    role: str = typer.Option(None, "--role", help="To every active user of this role."),
    user: str = typer.Option(None, "--user", help="To this user (at their e-mail)."),
    channel: str = typer.Option(
        None, "--channel", help="To this Apprise URL (json://host/path, tgram://token/chat, ...)."
    ),
) -> None:
    """Add a rule (one target per rule; add several rules for several targets)."""
    from pipeline.alerts import add_rule

    rule = add_rule(
        runtime().engine,
        name,
        event,
        min_severity=severity,
        silent_hours=silent_hours,
        to_role=role,
        to_user=user,
        to_channel=channel,
        actor="command line",
    )
    typer.echo(
        say(
            "rule %(name)s added: %(event)s %(threshold)s to %(target)s",
            name=rule.name,
            event=rule.event,
            threshold=rule.threshold,
            target=rule.target,
        )
    )


@rules_app.command("disable")
def rules_disable(name: str = typer.Argument(..., help="The rule's name.")) -> None:
    """Switch a rule off (what it sent stays recorded)."""
    from pipeline.alerts import set_rule_active

    set_rule_active(runtime().engine, name, False)
    typer.echo(say("rule %(name)s switched off", name=name))


@rules_app.command("enable")
def rules_enable(name: str = typer.Argument(..., help="The rule's name.")) -> None:
    """Switch a rule on again."""
    from pipeline.alerts import set_rule_active

    set_rule_active(runtime().engine, name, True)
    typer.echo(say("rule %(name)s switched on", name=name))


def _report(result, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    typer.echo(
        say(
            "%(sent)s sent, %(failed)s failed (tried again next run), %(already)s already sent",
            sent=result.sent,
            failed=result.failed,
            already=result.already_sent,
        )
    )
    for line in result.errors:
        typer.echo(line, err=True)
    if result.no_address:
        typer.echo(
            say(
                "no e-mail address (eincome users email NAME ADDRESS): %(names)s",
                names=", ".join(sorted(set(result.no_address))),
            )
        )


@alerts_app.command("send")
def alerts_send(
    as_of: str = typer.Option(
        None, "--as-of", help="Judge silent points as of this time (ISO with offset) [now]."
    ),
    as_json: bool = typer.Option(False, "--json", help="The counts as JSON."),
) -> None:
    """Send what the rules alert about (each once per recipient); failed sends are retried."""
    from pipeline.alerts import SmtpSettings, send_alerts

    rt = runtime()
    result = send_alerts(
        rt.engine,
        SmtpSettings.from_settings(rt.settings),
        as_of=_when(as_of, "--as-of"),
        lang=rt.settings.language,
        review_url=rt.settings.review_url,
        now=lambda: datetime.now(UTC),
    )
    _report(result, as_json)


@alerts_app.command("digest")
def alerts_digest(
    day: str = typer.Option(None, "--day", help="The day of the digest (YYYY-MM-DD) [today]."),
    as_json: bool = typer.Option(False, "--json", help="The counts as JSON."),
) -> None:
    """E-mail each inspector their open cases (overdue marked); once per inspector and day."""
    from pipeline.alerts import SmtpSettings, send_digests

    rt = runtime()
    result = send_digests(
        rt.engine,
        SmtpSettings.from_settings(rt.settings),
        day=_day(day),
        lang=rt.settings.language,
        review_url=rt.settings.review_url,
        now=lambda: datetime.now(UTC),
    )
    _report(result, as_json)


@alerts_app.command("history")
def alerts_history(
    limit: int = typer.Option(50, "--limit", help="How many attempts, newest first."),
) -> None:
    """The record of sends: when, what, to whom, channel, outcome."""
    from pipeline.alerts import recent_deliveries

    for d in recent_deliveries(runtime().engine, limit=limit):
        outcome = d.status if not d.error else f"{d.status}: {d.error}"
        typer.echo(
            f"{d.started_at.isoformat(timespec='seconds')}\t{d.subject_key}\t{d.recipient}"
            f"\t{d.address}\t{d.channel}\t#{d.attempt}\t{outcome}"
        )
