"""The `eincome` command. Each area registers its commands from its own module; each command
parses its arguments, calls one function in `pipeline`, and reports."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from pipeline.core.errors import UnusableInputError

app = typer.Typer(
    name="eincome",
    help="E-income revenue monitoring: ingest feeds, aggregate, detect leakage, review cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# Command modules register themselves on `app` when imported.
from pipeline.cli import data_cmds  # noqa: E402,F401
from pipeline.cli import ingest_cmds  # noqa: E402,F401
from pipeline.cli import sim_cmds  # noqa: E402,F401
from pipeline.cli import review_cmds  # noqa: E402,F401
from pipeline.cli import demo_cmds  # noqa: E402,F401
from pipeline.cli import detect_cmds  # noqa: E402,F401
from pipeline.cli import source_cmds  # noqa: E402,F401
from pipeline.cli import recon_cmds  # noqa: E402,F401


def main() -> None:
    """Console-script entry: unusable input becomes one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UnusableInputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
