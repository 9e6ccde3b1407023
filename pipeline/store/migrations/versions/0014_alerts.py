"""alert_rules, alert_deliveries and users.email: alerts that reach people

High-severity cases, points silent in their open hours and pipeline failures are sent by e-mail
(to the users a rule names, at ``users.email``) or to a chat/webhook channel (an Apprise URL).
``alert_rules`` says what goes to whom; ``alert_deliveries`` records every attempt, and its
partial unique index (one sending-or-sent row per subject and recipient) is what stops a repeat.
A default rule set is seeded: high cases to supervisors, silent points and failures to ops.

Revision ID: 0014_alerts
Revises: 0013_freshness
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from pipeline.store.schema import UTCDateTime

revision = "0014_alerts"
down_revision = "0013_freshness"
branch_labels = None
depends_on = None

# The seeded rules (pipeline.casework.alert_rules.DEFAULT_RULES says the same; a test holds them equal).
DEFAULT_RULES = (
    {
        "name": "high cases to supervisors",
        "event": "case",
        "min_severity": "high",
        "to_role": "supervisor",
    },
    {"name": "silent points to ops", "event": "silence", "silent_hours": 2, "to_role": "ops"},
    {"name": "pipeline failures to ops", "event": "failure", "to_role": "ops"},
)


def upgrade() -> None:
    # Plain ADD COLUMN (nullable): SQLite's batch mode would copy users under its foreign keys.
    op.add_column("users", sa.Column("email", sa.String(length=254), nullable=True))
    rules = op.create_table(
        "alert_rules",
        sa.Column("rule_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("min_severity", sa.String(length=16), nullable=True),
        sa.Column("silent_hours", sa.Integer(), nullable=True),
        sa.Column("to_role", sa.String(length=16), nullable=True),
        sa.Column("to_user", sa.String(length=64), nullable=True),
        sa.Column("to_channel", sa.Text(), nullable=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name="pk_alert_rules"),
        sa.UniqueConstraint("name", name="uq_alert_rules_name"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("what", sa.String(length=16), nullable=False),
        sa.Column("subject_key", sa.String(length=200), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.rule_id"], name="fk_alert_deliveries_rule_id_alert_rules"
        ),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_alert_deliveries"),
    )
    op.create_index(
        "ux_alert_deliveries_once",
        "alert_deliveries",
        ["subject_key", "recipient"],
        unique=True,
        sqlite_where=sa.text("status IN ('sending', 'sent')"),
        postgresql_where=sa.text("status IN ('sending', 'sent')"),
    )
    op.create_index("ix_alert_deliveries_started_at", "alert_deliveries", ["started_at"])
    now = datetime.now(UTC)
    op.bulk_insert(
        rules,
        [
            {
                "min_severity": None,
                "silent_hours": None,
                "to_role": None,
                "to_user": None,
                "to_channel": None,
                **rule,
                "active": 1,
                "created_by": "migration 0014",
                "created_at": now,
            }
            for rule in DEFAULT_RULES
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_started_at", table_name="alert_deliveries")
    op.drop_index("ux_alert_deliveries_once", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_rules")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email")
