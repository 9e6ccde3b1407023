"""Commands for push API keys: `eincome keys issue|list|revoke` (the app's /keys page does the same)."""

from __future__ import annotations

import typer

from pipeline.cli.common import runtime

keys_app = typer.Typer(
    help="API keys for devices and vendors that push sales (POST /api/v1/transactions).",
    no_args_is_help=True,
)


def _gettext(language: str):
    # The catalog lives with the review app (the web extra); imported when a command runs.
    from pipeline.review.i18n import translations

    return translations(language).gettext


@keys_app.command("issue")
def keys_issue(
    label: str = typer.Argument(..., help="Which device or vendor holds the key."),
    points: list[str] = typer.Option(..., "--point", help="A point the key covers (repeat)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the key (for scripts)."),
) -> None:
    """Issue a key; it is printed once and never shown again."""
    from pipeline.intake.push import issue_key

    rt = runtime()
    issued = issue_key(rt.engine, label, points, actor="command line")
    if quiet:
        typer.echo(issued.secret)
        return
    _ = _gettext(rt.settings.language)
    typer.echo(
        _("key %(prefix)s for %(label)s, points %(points)s; copy it now, it is not shown again:")
        % {
            "prefix": issued.key.prefix,
            "label": issued.key.label,
            "points": ", ".join(issued.key.point_ids),
        }
    )
    typer.echo(issued.secret)


@keys_app.command("list")
def keys_list() -> None:
    """List keys: prefix, holder, points, state."""
    from pipeline.intake.push import list_keys

    rt = runtime()
    _ = _gettext(rt.settings.language)
    for key in list_keys(rt.engine):
        state = (
            _("active")
            if key.active
            else _("revoked %(when)s") % {"when": key.revoked_at.isoformat(timespec="seconds")}
        )
        typer.echo(f"{key.prefix}\t{key.label}\t{','.join(key.point_ids)}\t{state}")


@keys_app.command("revoke")
def keys_revoke(prefix: str = typer.Argument(..., help="The key's prefix (eincome keys list).")):
    """Revoke a key: its next request is refused."""
    from pipeline.intake.push import revoke_key

    rt = runtime()
    key = revoke_key(rt.engine, prefix, actor="command line")
    _ = _gettext(rt.settings.language)
    typer.echo(_("key %(prefix)s (%(label)s) revoked") % {"prefix": key.prefix, "label": key.label})
