"""reason_parts: reasons kept as phrases beside their English text

The detector's, reconciliation's and late data's reasons are written as phrases (a msgid and its
values, ``core.phrases``) so the review app and the command line say them in the reader's
language. The English text stays in ``reasons`` (and ``note``); the phrases go beside it as JSON.
Rows written before have none and are shown as their text.

Revision ID: 0008_reason_parts
Revises: 0007_rescore
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_reason_parts"
down_revision = "0007_rescore"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN leaves case_events' append-only triggers in place on both databases.
    op.add_column("anomalies", sa.Column("reason_parts", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("reason_parts", sa.Text(), nullable=True))
    op.add_column("case_events", sa.Column("note_parts", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35 has it): a batch copy of case_events would lose its
    # append-only triggers.
    for table, column in (
        ("case_events", "note_parts"),
        ("cases", "reason_parts"),
        ("anomalies", "reason_parts"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
