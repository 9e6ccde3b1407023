"""review: server-side sessions; an append-only trail of changes to users

``review_sessions`` lets the server end a sign-in (sign-out, password reset, role change,
deactivation, idle and absolute limits) instead of trusting a signed cookie until it expires.
``user_events`` records who created, re-roled, reset or (de)activated whom; like
``case_events`` (migration 0002_review) the database refuses to change or delete its rows.

Revision ID: 0005_review_sec
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0005_review_sec"
down_revision = "0004"
branch_labels = None
depends_on = None

MESSAGE = "user_events is append-only: the trail of changes to users cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "review_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("end_reason", sa.String(32)),
        sa.PrimaryKeyConstraint("session_id", name="pk_review_sessions"),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], name="fk_review_sessions_username_users"
        ),
    )
    op.create_index("ix_review_sessions_username", "review_sessions", ["username"])
    op.create_table(
        "user_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("before", sa.Text()),
        sa.Column("after", sa.Text()),
        sa.PrimaryKeyConstraint("event_id", name="pk_user_events"),
    )
    op.create_index("ix_user_events_username", "user_events", ["username"])
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER user_events_no_{action.lower()} BEFORE {action} ON user_events "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION user_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$"
    )
    op.execute(
        "CREATE TRIGGER user_events_no_change BEFORE UPDATE OR DELETE ON user_events "
        "FOR EACH ROW EXECUTE FUNCTION user_events_append_only()"
    )
    # TRUNCATE bypasses row triggers; it gets its own statement-level trigger.
    op.execute(
        "CREATE TRIGGER user_events_no_truncate BEFORE TRUNCATE ON user_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION user_events_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS user_events_no_truncate ON user_events")
        op.execute("DROP TRIGGER IF EXISTS user_events_no_change ON user_events")
        op.execute("DROP FUNCTION IF EXISTS user_events_append_only()")
    op.drop_index("ix_user_events_username", table_name="user_events")
    op.drop_table("user_events")
    op.drop_index("ix_review_sessions_username", table_name="review_sessions")
    op.drop_table("review_sessions")
