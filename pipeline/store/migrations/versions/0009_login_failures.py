"""login_failures: wrong passwords per client address and username, shared by every worker

The review app slows repeated wrong passwords (``casework.throttle``). The counts were kept in
each worker's memory, so a guesser could spread attempts over the workers and a restart forgot
them; here every worker reads and bumps the same rows.

Revision ID: 0009_login_failures
Revises: 0008_reason_parts
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0009_login_failures"
down_revision = "0008_reason_parts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )
    op.create_index(
        "ix_login_failures_last_failed_at", "login_failures", ["last_failed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_last_failed_at", table_name="login_failures")
    op.drop_table("login_failures")
