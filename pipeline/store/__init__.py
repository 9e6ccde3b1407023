"""Storage: the schema, its Alembic migrations, and the engine factory."""

from pipeline.store.db import connect, upgrade

__all__ = ["connect", "upgrade"]
