"""Commands for the review app: `eincome serve` and `eincome users ...`."""

from __future__ import annotations

import subprocess
import sys

import typer

from pipeline.casework import users as users_store
from pipeline.cli.common import runtime, say

# Top-level `eincome` commands of this module; the hub (`pipeline.cli`) adds them.
commands = typer.Typer()

users_app = typer.Typer(help="Review-app users and their roles.", no_args_is_help=True)


@commands.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        1, min=1, help="Server processes (uvicorn workers); more take more push requests a second."
    ),
) -> None:
    """Start the review web app (auditors, supervisors, ops, leaders) and the push API."""
    from pipeline.review import serve as serve_app

    rt = runtime()
    if not rt.settings.secret_key:
        typer.echo(
            say("note: EINCOME_SECRET_KEY is not set; sessions end when the server restarts"),
            err=True,
        )
    typer.echo(say("eincome review app on %(url)s  (Ctrl+C to stop)", url=f"http://{host}:{port}/"))
    rt.engine  # migrate once here, before the writer and the workers start  # noqa: B018
    # The push writer is a process of its own: its Great Expectations work would otherwise hold
    # the web process's GIL for seconds and stall every request.
    writer = subprocess.Popen([sys.executable, "-m", "pipeline", "push-writer"])
    try:
        if workers == 1:
            serve_app(rt.engine, rt.settings, host=host, port=port, push_writer=False)
            return
        import uvicorn

        # Each worker process builds its own app and engine from the environment.
        uvicorn.run(
            "pipeline.cli.review_cmds:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        writer.terminate()
        writer.wait(timeout=60)


def app_from_env():
    """The app of one `eincome serve --workers N` process, built from the environment."""
    from pipeline.review import create_app

    rt = runtime()
    return create_app(rt.engine, rt.settings, push_writer=False)


@commands.command("push-writer")
def push_writer() -> None:
    """Ingest pushed requests from the inbox until stopped (`eincome serve` starts one)."""
    import logging
    import signal

    from pipeline.review.app import push_service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

    rt = runtime()
    service = push_service(rt.engine, rt.settings)
    signal.signal(signal.SIGTERM, lambda *_: service.halt())
    try:
        service.run_forever()
    except KeyboardInterrupt:
        pass


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
        password = typer.prompt(
            say("Password"),
            hide_input=True,
            confirmation_prompt=say("Repeat for confirmation"),
        )
    rt = runtime()
    user = users_store.add_user(rt.engine, name, role, password, actor="command line")
    typer.echo(say("user %(name)s added with role %(role)s", name=user.username, role=user.role))


@users_app.command("email")
def users_email(
    name: str = typer.Argument(..., help="Username."),
    address: str = typer.Argument(None, help="E-mail address; leave out to clear it."),
) -> None:
    """Set where alerts and the daily digest reach a user."""
    rt = runtime()
    users_store.set_email(rt.engine, name, address, actor="command line")
    if address:
        typer.echo(say("alerts for %(name)s go to %(address)s", name=name, address=address))
    else:
        typer.echo(say("%(name)s has no e-mail address now", name=name))


@users_app.command("list")
def users_list() -> None:
    """List review-app users and their roles."""
    rt = runtime()
    for user in users_store.list_users(rt.engine):
        state = say("active") if user.active else say("inactive")
        typer.echo(f"{user.username}\t{user.role}\t{state}")
