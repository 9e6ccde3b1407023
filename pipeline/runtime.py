"""The composition root: settings, the database engine and the models folder, made in one place."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from pipeline.core.settings import Settings
from pipeline.store import connect


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        """The migrated engine; opened on first use so `--help` never touches a database."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        return connect(self.settings.database_url)

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir


def runtime_from_env(**overrides) -> Runtime:
    return Runtime(Settings.from_env(**overrides))
