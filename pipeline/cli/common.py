"""Helpers shared by command modules: the runtime from the environment, the error console.

Command modules import this, never the hub (`pipeline.cli`), so imports flow one way:
hub -> command modules -> common -> pipeline.
"""

from __future__ import annotations

from rich.console import Console

from pipeline.runtime import Runtime, runtime_from_env

err_console = Console(stderr=True)


def runtime() -> Runtime:
    return runtime_from_env()
