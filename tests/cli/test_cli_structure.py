"""The shape of the `eincome` command: the hub assembles command modules that never import it
back, starting the CLI loads none of the web app's or Airflow's libraries, and a usage error is
one usage message and exit 2 (through a real subprocess, as a person runs it)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pipeline.cli

CLI_DIR = Path(pipeline.cli.__file__).parent
# The web app's libraries and Airflow: a CLI command that needs them imports them when it runs.
HEAVY = ("fastapi", "starlette", "argon2", "jinja2", "airflow")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="100", EINCOME_DB_URL="", PYTHONPATH=str(CLI_DIR.parents[1]))
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_command_modules_never_import_the_hub():
    for module in sorted(CLI_DIR.glob("*.py")):
        if module.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if isinstance(node, ast.ImportFrom) and node.module == "pipeline.cli":
                names = [alias.name for alias in node.names]
                raise AssertionError(f"{module.name} imports {names} from the hub pipeline.cli")
            if isinstance(node, ast.Import):
                assert "pipeline.cli" not in [a.name for a in node.names], module.name


def test_importing_the_cli_loads_no_web_app_or_airflow_library():
    done = _python(
        "import json, sys; import pipeline.cli; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_points_help_works_without_the_web_app_libraries_installed():
    # A finder that refuses the web app's libraries stands in for an install without the extra.
    blocker = (
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {HEAVY!r}:\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Missing())\n"
        "sys.argv = ['eincome', 'points', '--help']\n"
        "from pipeline.cli import main\n"
        "main()\n"
    )
    done = _python(blocker)
    assert done.returncode == 0, done.stderr
    assert "The collection-point registry." in done.stdout
    assert "load" in done.stdout


def test_the_hub_lists_every_command_in_the_documented_order():
    import typer

    names = list(typer.main.get_command(pipeline.cli.app).commands)
    assert names == [
        "ingest", "simulate", "evaluate", "serve", "push-writer", "demo", "train", "score",
        "backfill", "anomalies", "cases", "backtest", "pull", "reconcile", "evaluate-recon",
        "points", "targets", "users", "suppress", "recon", "keys", "alerts", "quarantine",
    ]  # fmt: skip


def test_unknown_command_is_a_usage_error_with_exit_2_not_a_traceback():
    # Typer 0.29 vendors click; the entry point caught only click's own errors, so a mistyped
    # command ended in a traceback and exit 1.
    done = _python("from pipeline.cli import main; main()", "nosuch")
    assert done.returncode == 2, done.stderr
    assert "No such command 'nosuch'" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_option_is_a_usage_error_with_exit_2():
    done = _python("from pipeline.cli import main; main()", "score", "--start", "2024-01-01")
    assert done.returncode == 2, done.stderr
    assert "Missing option '--end'" in done.stderr
    assert "Traceback" not in done.stderr
