"""Commands for the review app: `eincome serve` and `eincome users ...`."""

from __future__ import annotations

import typer

from pipeline.casework import users as users_store
from pipeline.cli.common import runtime

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()

users_app = typer.Typer(help="Review-app users and their roles.", no_args_is_help=True)


@commands.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Start the review web app (auditors, supervisors, ops, leaders)."""
    from pipeline.review import serve as serve_app

    rt = runtime()
    if not rt.settings.secret_key:
        typer.echo(
            "note: EINCOME_SECRET_KEY is not set; sessions end when the server restarts", err=True
        )
    typer.echo(f"eincome review app on http://{host}:{port}/  (Ctrl+C to stop)")
    serve_app(rt.engine, rt.settings, host=host, port=port)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Username (letters, digits, '.', '_', '-')."),
    role: str = typer.Option(..., help=f"One of: {', '.join(users_store.ROLES)}."),
    password: str = typer.Option(
        None, help="Password (at least 8 characters); asked for when not given."
    ),
) -> None:
    """Create a review-app user."""
    users_store.check_username(name)
    users_store.check_role(role)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = users_store.add_user(runtime().engine, name, role, password, actor="command line")
    typer.echo(f"user {user.username} added with role {user.role}")


@users_app.command("list")
def users_list() -> None:
    """List review-app users and their roles."""
    for user in users_store.list_users(runtime().engine):
        typer.echo(f"{user.username}\t{user.role}\t{'active' if user.active else 'inactive'}")
