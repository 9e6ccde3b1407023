"""Helpers shared by command modules: the runtime from the environment, output formats."""

from __future__ import annotations

from pipeline.runtime import Runtime, runtime_from_env


def runtime() -> Runtime:
    return runtime_from_env()
