"""reconciliation feeds

Revision ID: 0002_recon
Revises: 0002_review (linearised after the review lane's revision; the lead may reorder)
Create Date: 2026-11-27 22:05:36.928443
"""

import sqlalchemy as sa
from alembic import op

import pipeline.store.schema

revision = "0002_recon"
down_revision = "0002_review"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "bank_deposits",
        sa.Column("line_id", sa.String(length=128), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("point_id", sa.String(length=64), nullable=True),
        sa.Column("collector_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.batch_id"],
            name=op.f("fk_bank_deposits_batch_id_ingest_batches"),
        ),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_bank_deposits")),
    )
    with op.batch_alter_table("bank_deposits", schema=None) as batch_op:
        batch_op.create_index("ix_bank_deposits_booked_on", ["booked_on"], unique=False)
        batch_op.create_index("ix_bank_deposits_point_id", ["point_id"], unique=False)

    op.create_table(
        "collector_deposits",
        sa.Column("collector_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("deposited_on", sa.Date(), nullable=False),
        sa.Column("cash_amount", sa.BigInteger(), nullable=False),
        sa.Column("point_id", sa.String(length=64), nullable=True),
        sa.Column("area", sa.String(length=100), nullable=True),
        sa.Column("receipt_ref", sa.String(length=128), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.batch_id"],
            name=op.f("fk_collector_deposits_batch_id_ingest_batches"),
        ),
        sa.PrimaryKeyConstraint("collector_id", "day", name=op.f("pk_collector_deposits")),
    )
    with op.batch_alter_table("collector_deposits", schema=None) as batch_op:
        batch_op.create_index("ix_collector_deposits_day", ["day"], unique=False)

    op.create_table(
        "tax_returns",
        sa.Column("point_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("declared_sales", sa.BigInteger(), nullable=False),
        sa.Column("tax_due", sa.BigInteger(), nullable=False),
        sa.Column("filed_at", pipeline.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("return_ref", sa.String(length=128), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.batch_id"],
            name=op.f("fk_tax_returns_batch_id_ingest_batches"),
        ),
        sa.PrimaryKeyConstraint("point_id", "period_start", name=op.f("pk_tax_returns")),
    )


def downgrade() -> None:

    op.drop_table("tax_returns")
    with op.batch_alter_table("collector_deposits", schema=None) as batch_op:
        batch_op.drop_index("ix_collector_deposits_day")

    op.drop_table("collector_deposits")
    with op.batch_alter_table("bank_deposits", schema=None) as batch_op:
        batch_op.drop_index("ix_bank_deposits_point_id")
        batch_op.drop_index("ix_bank_deposits_booked_on")

    op.drop_table("bank_deposits")
