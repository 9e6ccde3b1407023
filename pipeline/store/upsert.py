"""Dialect-aware INSERT ... ON CONFLICT, the one way rows are written idempotently."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(connection: Connection, table: Table):
    """The INSERT of ``connection``'s dialect, which has ``on_conflict_do_update``."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert not implemented for {dialect}")


def upsert(
    connection: Connection, table: Table, rows: Sequence[dict], *, update: bool = True
) -> None:
    """Insert ``rows``; on a primary-key clash replace the non-key columns (or skip if not ``update``)."""
    if not rows:
        return
    stmt = dialect_insert(connection, table)
    keys = [c.name for c in table.primary_key.columns]
    if update:
        changed = {
            c.name: stmt.excluded[c.name]
            for c in table.columns
            if c.name not in keys and c.name in rows[0]
        }
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=changed)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    connection.execute(stmt, list(rows))
