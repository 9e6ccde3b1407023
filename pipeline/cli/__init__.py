"""The `eincome` command: the hub that assembles every area's commands into one Typer app.

Each `*_cmds` module defines its commands on its own Typer (`commands` for top-level ones, a
named group such as `points_app` for `eincome points ...`) and never imports this hub, so
importing a command module has no side effects and there is no import cycle. Each command
parses its arguments, calls one function in `pipeline`, and reports.
"""

from __future__ import annotations

import sys

import typer

from pipeline.cli import (
    alert_cmds,
    data_cmds,
    demo_cmds,
    detect_cmds,
    ingest_cmds,
    key_cmds,
    quarantine_cmds,
    recon_cmds,
    review_cmds,
    sim_cmds,
    source_cmds,
)
from pipeline.cli.common import choose_language, err_console, reason_of, say
from pipeline.core.errors import UnusableInputError

app = typer.Typer(
    name="eincome",
    help="E-income revenue monitoring: ingest feeds, aggregate, detect leakage, review cases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    lang: str = typer.Option(
        None,
        "--lang",
        help="Language of the messages: id (Bahasa Indonesia, the default) or en. "
        "Default: $EINCOME_LANGUAGE.",
    ),
) -> None:
    """E-income revenue monitoring: ingest feeds, aggregate, detect leakage, review cases."""
    choose_language(lang)


# Top-level commands, in the order `eincome --help` lists them. A Typer added without a name
# contributes its commands directly to `app`.
for _module in (
    ingest_cmds,
    sim_cmds,
    review_cmds,
    demo_cmds,
    detect_cmds,
    source_cmds,
    recon_cmds,
):
    app.add_typer(_module.commands)

# Command groups: `eincome <group> <command>`.
app.add_typer(data_cmds.points_app, name="points")
app.add_typer(data_cmds.targets_app, name="targets")
app.add_typer(review_cmds.users_app, name="users")
app.add_typer(detect_cmds.suppress_app, name="suppress")
app.add_typer(recon_cmds.recon_app, name="recon")
app.add_typer(key_cmds.keys_app, name="keys")
app.add_typer(alert_cmds.alerts_app, name="alerts")
app.add_typer(quarantine_cmds.quarantine_app, name="quarantine")


def main() -> None:
    """Console-script entry: unusable input becomes one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UnusableInputError as exc:
        _error(say("error: %(reason)s", reason=reason_of(exc)))
        sys.exit(2)
    except ModuleNotFoundError as exc:
        extra = _extra_providing(exc.name)
        if extra is None:
            raise
        # A base install (`pip install eincome`) lacks the web app's and Airflow's packages.
        _error(
            say(
                "error: this command needs the '%(extra)s' extra (%(module)s is not installed):"
                " pip install 'eincome[%(extra)s]'",
                extra=extra,
                module=exc.name,
            )
        )
        sys.exit(2)
    except typer.Abort:
        err_console.print(say("aborted"))
        sys.exit(130)
    except SystemExit:
        raise
    except _click_errors() as exc:  # usage errors arrive here in non-standalone mode
        exc.show()
        sys.exit(exc.exit_code)


def _error(line: str) -> None:
    # Printed as plain text: a reason may hold brackets rich would read as markup.
    err_console.print(line, markup=False, highlight=False, soft_wrap=True, style="bold red")


# Top-level modules of each optional extra (pyproject.toml), to name the one to install.
_EXTRA_MODULES = {
    "web": (
        "fastapi",
        "uvicorn",
        "argon2",
        "multipart",
        "python_multipart",
        "itsdangerous",
        "openpyxl",
    ),
    "airflow": ("airflow",),
    "postgres": ("psycopg",),
    "alerts": ("apprise",),
}


def _extra_providing(module: str | None) -> str | None:
    top = (module or "").split(".")[0]
    return next((extra for extra, names in _EXTRA_MODULES.items() if top in names), None)


def _click_errors() -> tuple[type[Exception], ...]:
    """click's usage-error base class(es). Typer 0.29 vendors its own click as ``typer._click``
    (private, hence the guard), whose errors are not ``click.ClickException``: catching only the
    latter let `eincome nosuch` end in a traceback and exit 1 instead of a usage line and exit 2."""
    import click

    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:  # typer < 0.29 uses click itself
        return (click.ClickException,)
    return (click.ClickException, TyperClickException)
