"""Transactions read by time through (point_id, occurred_at): the lone time index goes

Every transaction cost an insert into four structures on SQLite (the rowid table, the
(point_id, txn_id) key, (point_id, occurred_at) and occurred_at). Reads by time across points
(aggregation, detection, the backfill's check) now name the registry's points -
``point_id IN (...)`` - and walk (point_id, occurred_at) one point at a time, so the lone
occurred_at index is one write per row that nothing needs.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_transactions_occurred_at", table_name="transactions")


def downgrade() -> None:
    op.create_index("ix_transactions_occurred_at", "transactions", ["occurred_at"])
