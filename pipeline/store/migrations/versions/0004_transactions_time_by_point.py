"""Transactions read by time through (point_id, occurred_at); PostgreSQL's time index becomes BRIN

Every transaction cost an insert into four structures on SQLite (the rowid table, the
(point_id, txn_id) key, (point_id, occurred_at) and occurred_at). Reads by time across points
(aggregation, detection, the backfill's check) now name the registry's points -
``point_id IN (SELECT point_id FROM points)`` - so SQLite walks (point_id, occurred_at) one
point at a time and the lone occurred_at index goes.

PostgreSQL's planner answers that shape with a scan of the whole table (0.6 s a week's read on
a year), so there the occurred_at B-tree becomes a BRIN index: transactions are appended
roughly in time order, so a few kilobytes of block ranges find a week's rows (0.07 s) and cost
next to nothing to keep up on insert.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_transactions_occurred_at"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="transactions")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(INDEX, "transactions", ["occurred_at"], postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="transactions")
    op.create_index(INDEX, "transactions", ["occurred_at"])
