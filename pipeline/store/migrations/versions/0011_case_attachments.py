"""case_attachments: evidence files on a case

A field-check photo, a Z-report, a letter: the file is kept under $EINCOME_HOME/attachments,
named by its sha256, and this table says which case it belongs to, who uploaded it and what it
is (its type read from its own first bytes, not from the name it came with).

Revision ID: 0011_attachments
Revises: 0010_follow_up
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0011_attachments"
down_revision = "0010_follow_up"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_attachments",
        sa.Column("attachment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_as", sa.String(length=200), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.case_id"], name="fk_case_attachments_case_id_cases"
        ),
        sa.PrimaryKeyConstraint("attachment_id", name="pk_case_attachments"),
    )
    op.create_index("ix_case_attachments_case_id", "case_attachments", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_case_attachments_case_id", table_name="case_attachments")
    op.drop_table("case_attachments")
