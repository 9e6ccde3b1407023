"""case follow-up and search: due date and recovered rupiah on cases, a taxpayer number on
points, and the record of case exports

Inspectors set a due day on the cases they are given and, for confirmed leakage, the rupiah
recovered, so leaders see money found against money recovered. ``points.taxpayer_id`` (NPWPD)
lets a case be found by the taxpayer's number. ``case_exports`` records who took which cases out
of the app (an export is not an act on a case, so it does not go in ``case_events``).

Revision ID: 0010_follow_up
Revises: 0009_login_failures
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0010_follow_up"
down_revision = "0009_login_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both dialects: SQLite's batch mode would copy
    # ``cases`` into a new table under ``case_events``' foreign key and its triggers.
    op.add_column("cases", sa.Column("due_on", sa.Date(), nullable=True))
    op.add_column("cases", sa.Column("recovered_rp", sa.BigInteger(), nullable=True))
    op.add_column("points", sa.Column("taxpayer_id", sa.String(length=64), nullable=True))
    op.create_table(
        "case_exports",
        sa.Column("export_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("what", sa.String(length=32), nullable=False),
        sa.Column("fmt", sa.String(length=8), nullable=False),
        sa.Column("case_ids", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("export_id", name="pk_case_exports"),
    )


def downgrade() -> None:
    op.drop_table("case_exports")
    with op.batch_alter_table("points", schema=None) as batch_op:
        batch_op.drop_column("taxpayer_id")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("recovered_rp")
        batch_op.drop_column("due_on")
