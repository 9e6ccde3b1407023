"""Tables, as SQLAlchemy Core. Money is whole rupiah (BigInteger); times are UTC, timezone-aware.

Alembic migrations in ``migrations/versions`` create these; a change here needs a new revision
(``make migration m="what changed"``).
"""

# long: every table in one module, on purpose — one MetaData that the migrations and the
# schema test compare against, and one place to read which module owns which table.

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    select,
    text,
)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetime, stored as UTC on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite keeps a naive UTC string, so values read back
    are made aware again here. Naive values on the way in are refused: they are bugs.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Integer keys are 32-bit on PostgreSQL: an id past this names no row (and must not reach SQL,
# where it would overflow the parameter instead of finding nothing).
MAX_ROW_ID = 2**31 - 1

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

points = Table(
    "points",
    metadata,
    Column("point_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("revenue_type", String(32), nullable=False),
    Column("district", String(100), nullable=False),
    Column("open_hours", String(11), nullable=False),  # "HH:MM-HH:MM" local time
    Column("timezone", String(64), nullable=False, default="Asia/Jakarta"),
    Column("taxpayer_id", String(64)),  # NPWPD of a taxpayer point (optional; inspectors search it)
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per pull of one unit of input: a file, an API page, a slice of a POS table.
ingest_batches = Table(
    "ingest_batches",
    metadata,
    Column("batch_id", Integer, primary_key=True, autoincrement=True),
    Column(
        "source", String(200), nullable=False
    ),  # e.g. "file", "landing:kecamatan-a", "api:tapbox"
    Column("source_ref", Text, nullable=False),  # file path, page cursor, watermark range
    Column("sha256", String(64)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    # running | ok | partial (a truncated archive: what it held is stored) | failed | rejected
    Column("status", String(16), nullable=False),
    Column("rows_read", BigInteger, nullable=False, default=0),  # records: rows + malformed lines
    Column("accepted", BigInteger, nullable=False, default=0),
    Column("quarantined", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("message", Text),
    # Physical lines of a file (header and blank lines included); NULL for frames (API pages).
    Column("lines_read", BigInteger),
    # "host pid start" of the process running the batch: a dead owner's batch is abandoned.
    Column("owner", String(200)),
    Index("ix_ingest_batches_sha256", "sha256"),
    Index("ix_ingest_batches_status", "status"),
    # A pushed request finds its batch by its reference (push key + request id) on a retry.
    Index("ix_ingest_batches_source_ref", "source_ref"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("point_id", String(64), primary_key=True),
    Column("txn_id", String(128), primary_key=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("payment_method", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("operator_id", String(64)),
    Column(
        "payer_ref", String(128)
    ),  # optional: hashed payer account (QRIS/card), for split-payment checks
    # Lineage: the batch that stored the row. A foreign key on SQLite only (migration 0018):
    # PostgreSQL checks one with a trigger per row, which cost nearly as much as the key and the
    # index together; ingest, the one writer, commits the batch's row first and writes its id.
    Column("batch_id", Integer, nullable=False),
    ForeignKeyConstraint(["batch_id"], ["ingest_batches.batch_id"]).ddl_if(dialect="sqlite"),
    Index("ix_transactions_point_id_occurred_at", "point_id", "occurred_at"),
    # PostgreSQL only, and BRIN (migration 0004): see transactions_between.
    Index("ix_transactions_occurred_at", "occurred_at", postgresql_using="brin").ddl_if(
        dialect="postgresql"
    ),
)

# No B-tree on transactions' time alone (migration 0004): a read by time across points names the
# registry's points, so SQLite walks (point_id, occurred_at) a point at a time; PostgreSQL's
# planner prefers a hash join with the registry over the time range its BRIN index finds. Only
# registered points' transactions are ever stored (validation quarantines the rest).
REGISTERED_POINT_IDS = "SELECT point_id FROM points"  # for text SQL: point_id IN (...)


def transactions_between(start: datetime, end: datetime):
    """The where-clause for transactions in [start, end) at every point, through the index."""
    t = transactions.c
    return and_(
        t.point_id.in_(select(points.c.point_id)), t.occurred_at >= start, t.occurred_at < end
    )


quarantine = Table(
    "quarantine",
    metadata,
    Column("quarantine_id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id"), nullable=False),
    # The physical line of the file the record starts on (1 = the CSV header), or row in page.
    Column("line_no", BigInteger),
    Column("point_id", String(64)),
    Column("txn_id", String(128)),
    Column("raw", Text, nullable=False),  # the row as received, JSON
    Column("reasons", Text, nullable=False),  # plain words, "; "-separated
    # invalid (a rule failed) | conflict (key stored with other content) | malformed (a line
    # that is not a row: wrong field count, broken quoting, undecodable, NUL, cut off)
    Column("kind", String(16), nullable=False, default="invalid"),
    # A release (re-admission once the cause is fixed, ``intake.quarantine``): which release took
    # the row, what became of it - stored | duplicate (already stored by then) | requarantined
    # (still bad: ``requarantined_as`` is its new row, with the new reason) - and the batch that
    # re-validated it (its rows' lineage back to here). NULL outcome: still open.
    Column("release_id", Integer, ForeignKey("quarantine_releases.release_id")),
    Column("release_outcome", String(16)),
    Column("release_batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
    Column("requarantined_as", Integer),
    Index("ix_quarantine_batch_id", "batch_id"),
    Index("ix_quarantine_release_id", "release_id"),
)

# Every release of quarantined rows: who, when, what was asked (filters, ids, corrections) and
# what came of it. Written by ``intake.quarantine`` alone.
quarantine_releases = Table(
    "quarantine_releases",
    metadata,
    Column("release_id", Integer, primary_key=True, autoincrement=True),
    Column("actor", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("criteria", Text, nullable=False),  # JSON: the filters or ids, and any correction
    Column("selected", Integer, nullable=False, default=0),  # open rows the release took
    Column("stored", Integer, nullable=False, default=0),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("still_bad", Integer, nullable=False, default=0),  # quarantined again, new reason
    Column("skipped", Integer, nullable=False, default=0),  # not a row (malformed line): left open
    Column("message", Text),
)


# The newest transaction time (data time, not ingest time) per point and per ingest source: the
# feed carries no device id, so the source a batch came by (a landing folder, a vendor API, a POS
# table, the push API) is what tells a point's devices apart. Kept by ingest in the batch's own
# transaction (``store.freshness`` alone writes it) because the same figure read from
# ``transactions`` needs a scan: there is no index on batch_id, and max(occurred_at) GROUP BY
# point_id walks the whole table on PostgreSQL. Thousands of rows, read whole by the ops page.
feed_freshness = Table(
    "feed_freshness",
    metadata,
    Column("point_id", String(64), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("last_occurred_at", UTCDateTime, nullable=False),
    Column("last_batch_id", Integer, ForeignKey("ingest_batches.batch_id"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),  # when a batch last moved it (ingest time)
)


def _aggregate_columns(*, point_in_key: bool = True) -> list[Column]:
    return [
        Column("point_id", String(64), primary_key=point_in_key, nullable=False),
        Column("txn_count", Integer, nullable=False),  # paid transactions
        Column("gross_paid", BigInteger, nullable=False),  # rupiah, paid only
        Column("void_count", Integer, nullable=False),
        Column("void_amount", BigInteger, nullable=False),
        Column("refund_count", Integer, nullable=False),
        Column("refund_amount", BigInteger, nullable=False),
        Column("cash_amount", BigInteger, nullable=False),  # paid in cash; share = cash/gross
        Column("operators", Integer, nullable=False),  # distinct operators seen
        Column("max_ticket", BigInteger, nullable=False),
    ]


minute_aggregates = Table(
    "minute_aggregates",
    metadata,
    *_aggregate_columns(point_in_key=False),
    Column("minute_start", UTCDateTime, nullable=False),
    # Keyed time first: the live dashboard reads one day across every point, and an ingest
    # writes minutes in time order, so the key needs no second index by time (migration 0003).
    PrimaryKeyConstraint("minute_start", "point_id"),
    sqlite_with_rowid=False,
)

hour_aggregates = Table(
    "hour_aggregates",
    metadata,
    *_aggregate_columns(),
    Column("hour_start", UTCDateTime, primary_key=True),
    Index("ix_hour_aggregates_hour_start", "hour_start"),
)

detector_models = Table(
    "detector_models",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("path", Text, nullable=False),
    Column("trained_from", UTCDateTime, nullable=False),
    Column("trained_to", UTCDateTime, nullable=False),
    Column("meta", Text, nullable=False),  # JSON: features, threshold, library versions
)

# One row per flagged point-hour.
anomalies = Table(
    "anomalies",
    metadata,
    Column("point_id", String(64), primary_key=True),
    Column("hour_start", UTCDateTime, primary_key=True),
    Column("score", Float, nullable=False),
    Column("severity", String(16), nullable=False),  # low | medium | high
    Column("kind", String(32), nullable=False),  # suspected pattern
    # device | pattern | volume (detection.detector.case_evidence): whether the hour can open a
    # case on its own (casework.incidents.raises_case); NULL before 0017 (read as before: it can).
    Column("evidence", String(16)),
    Column("reasons", Text, nullable=False),  # English, "; "-separated (core.phrases.english)
    Column("reason_parts", Text),  # JSON: the same reasons as phrases; NULL before 0008
    Column("shortfall_rp", BigInteger, nullable=False),
    Column("operators", Text),  # comma-separated operator ids involved
    Column("model_version", String(64), nullable=False),
    Column("case_id", Integer, ForeignKey("cases.case_id")),
    Column("scored_at", UTCDateTime, nullable=False),
    Index("ix_anomalies_hour_start", "hour_start"),
)

# Point-hours that rows reached after the hour was scored (a device offline, synced later): the
# next scoring run re-scores them. Written and cleared by ``store.rescore_queue`` alone.
rescore_requests = Table(
    "rescore_requests",
    metadata,
    Column("point_id", String(64), primary_key=True),
    Column("hour_start", UTCDateTime, primary_key=True),
    Column("late_rows", Integer, nullable=False),  # transactions stored late into the hour
    Column("first_at", UTCDateTime, nullable=False),  # the earliest of them
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id"), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
)

# Consecutive flagged hours of one point, or a reconciliation gap: what an auditor decides on.
cases = Table(
    "cases",
    metadata,
    Column("case_id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(16), nullable=False, default="detector"),  # detector | reconciliation
    Column("point_id", String(64), nullable=False),
    Column("start_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=False),  # exclusive
    Column("kind", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("reasons", Text, nullable=False),  # English, "; "-separated (core.phrases.english)
    Column("reason_parts", Text),  # JSON: the same reasons as phrases; NULL before 0008
    Column("shortfall_rp", BigInteger, nullable=False),
    Column("operators", Text),
    Column("model_version", String(64)),
    Column("details", Text),  # JSON, origin-specific (e.g. the three reconciliation numbers)
    Column(
        "status", String(16), nullable=False, default="open"
    ),  # open|confirmed|false_alarm|field_check|cleared (late data, detection.late_data)
    Column("assignee", String(64)),
    Column("due_on", Date),  # follow-up: the local day an assigned case should be worked by
    Column("recovered_rp", BigInteger),  # confirmed leakage: rupiah recovered so far (whole)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_cases_point_id_start_at", "point_id", "start_at"),
    Index("ix_cases_status", "status"),
)

# Append-only audit trail of every decision, reopen and assignment.
case_events = Table(
    "case_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.case_id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),  # decide | reopen | assign | note | clear
    Column("before", Text),
    Column("after", Text),
    Column("note", Text),
    Column("note_parts", Text),  # JSON phrases of a pipeline's note (core.phrases), else NULL
    Index("ix_case_events_case_id", "case_id"),
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),  # auditor | supervisor | ops | viewer
    Column("active", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Column("email", String(254)),  # where alerts and the daily digest reach the user (optional)
)

# Every export of cases from the review app (who took which cases out, when, in what format):
# written by ``casework.audit`` alone; an export is not an act on a case, so it has its own table.
case_exports = Table(
    "case_exports",
    metadata,
    Column("export_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("what", String(32), nullable=False),  # queue | selection | case
    Column("fmt", String(8), nullable=False),  # csv | xlsx
    Column("case_ids", Text, nullable=False),  # JSON list of the exported case ids
    Column("rows", Integer, nullable=False),
)

# Evidence attached to a case (a field-check photo, a Z-report, a letter): the file itself lives
# under $EINCOME_HOME/attachments (``stored_as``, relative), named by its sha256. Written by
# ``casework.attachments`` alone; each upload is also a row in the case's trail.
case_attachments = Table(
    "case_attachments",
    metadata,
    Column("attachment_id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.case_id"), nullable=False),
    Column("filename", String(200), nullable=False),  # the uploader's name for it, made safe
    Column("media_type", String(64), nullable=False),  # from the file's own first bytes
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("stored_as", String(200), nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", UTCDateTime, nullable=False),
    Column("note", Text),
    Index("ix_case_attachments_case_id", "case_id"),
)

# Review-app sign-ins the server can end: the cookie carries a random token, only its SHA-256 is
# kept here, so a copy of this table signs no one in. Written by ``casework.sessions`` alone.
review_sessions = Table(
    "review_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),  # sha256 hex of the cookie's token
    Column("username", String(64), ForeignKey("users.username"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(32)),  # signed out | password | role | deactivated | idle | expired
    Index("ix_review_sessions_username", "username"),
)

# Wrong passwords in a row per client address and per username, shared by every worker of the
# review app (a brake, not a lockout). Written by ``casework.throttle`` alone.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(200), primary_key=True),  # "address:<ip>" | "user:<username>"
    Column("failures", Integer, nullable=False),  # wrong passwords since the last quiet window
    Column("last_failed_at", UTCDateTime, nullable=False),
    Index("ix_login_failures_last_failed_at", "last_failed_at"),
)

# Append-only trail of every change to users (who did what to whom); triggers refuse rewrites.
user_events = Table(
    "user_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column(
        "action", String(32), nullable=False
    ),  # created | role | password | email | deactivated | reactivated
    Column("before", Text),
    Column("after", Text),
    Index("ix_user_events_username", "username"),
)

# Yearly PAD targets (realisasi vs target) per revenue type, optionally per district ('' = the
# whole regency). A type's target for a year is either one regency-wide row or one row per
# district, never both (it would count twice). Written by ``reference.targets`` alone, which
# appends every change to ``revenue_target_events`` in the same transaction.
revenue_targets = Table(
    "revenue_targets",
    metadata,
    Column("year", Integer, primary_key=True),
    Column("revenue_type", String(32), primary_key=True),
    Column("district", String(100), primary_key=True),  # '' = every district together
    Column("target_rp", BigInteger, nullable=False),  # whole rupiah for the calendar year
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Append-only trail of every change to the targets (a file load, a supervisor's edit or removal);
# triggers refuse rewrites, as for ``user_events``.
revenue_target_events = Table(
    "revenue_target_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # load | set | remove
    Column("year", Integer, nullable=False),
    Column("revenue_type", String(32), nullable=False),
    Column("district", String(100), nullable=False),
    Column("before_rp", BigInteger),  # NULL: there was no target
    Column("after_rp", BigInteger),  # NULL: the target was removed
    Column("source", Text),  # the file a load came from
    Index("ix_revenue_target_events_year", "year"),
)

# Announced closures, maintenance windows, and auditor false alarms: no cases raised inside.
suppressions = Table(
    "suppressions",
    metadata,
    Column("suppression_id", Integer, primary_key=True, autoincrement=True),
    Column("point_id", String(64), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("kind", String(32)),  # pattern kind suppressed; NULL = every kind
    Column("reason", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_suppressions_point_id", "point_id"),
)

# Where each pull source stopped: an API cursor, a POS table watermark.
source_watermarks = Table(
    "source_watermarks",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Failures recorded by DAG failure callbacks and the CLI, shown to ops in the review app.
pipeline_failures = Table(
    "pipeline_failures",
    metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("where", String(200), nullable=False),  # dag.task or command
    Column("run_id", String(250)),
    Column("error", Text, nullable=False),
)


# --- Reconciliation feeds (issue 7): what was declared and what was deposited. -------------------

# Self-assessed tax returns: one per taxpayer point and period (normally a calendar month).
tax_returns = Table(
    "tax_returns",
    metadata,
    Column("point_id", String(64), primary_key=True),
    Column("period_start", Date, primary_key=True),  # first day of the period, local calendar
    Column("period_end", Date, nullable=False),  # last day of the period, inclusive
    Column("declared_sales", BigInteger, nullable=False),  # rupiah
    Column("tax_due", BigInteger, nullable=False),  # rupiah, as self-assessed
    Column("filed_at", UTCDateTime),
    Column("return_ref", String(128)),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id"), nullable=False),
)

# Lines of the treasury account's bank statement; credits are deposits, debits (fees) negative.
bank_deposits = Table(
    "bank_deposits",
    metadata,
    Column("line_id", String(128), primary_key=True),  # the bank's own statement line id
    Column("booked_on", Date, nullable=False),
    Column("value_date", Date, nullable=False),
    Column("amount", BigInteger, nullable=False),  # rupiah; credit - debit
    Column("reference", Text, nullable=False),  # the bank's description / payer reference
    Column("point_id", String(64)),  # attribution (virtual account / payment code), if any
    Column("collector_id", String(64)),
    Column(
        "channel", String(32), nullable=False
    ),  # teller | va | qris | transfer | cash_collector | ...
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id"), nullable=False),
    Index("ix_bank_deposits_booked_on", "booked_on"),
    Index("ix_bank_deposits_point_id", "point_id"),
)

# Cash handed in by levy collectors (parking attendants, market collectors), per collector and day.
# The collector is the operator_id on that collector's transactions.
collector_deposits = Table(
    "collector_deposits",
    metadata,
    Column("collector_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),  # the collection day the cash is for, local calendar
    Column("deposited_on", Date, nullable=False),  # when it was handed in
    Column("cash_amount", BigInteger, nullable=False),  # rupiah
    Column("point_id", String(64)),  # the point (or one of them) collected at, if stated
    Column("area", String(100)),
    Column("receipt_ref", String(128)),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id"), nullable=False),
    Index("ix_collector_deposits_day", "day"),
)

# API keys of devices and vendors that push transactions (POST /api/v1/transactions): only the
# SHA-256 of the secret is kept, so a copy of this table pushes nothing. A key covers a list of
# points; a revoked key stays, for the trail. Written by ``intake.push.keys`` alone.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Integer, primary_key=True, autoincrement=True),
    Column("prefix", String(32), nullable=False, unique=True),  # the key's public part, shown
    Column("secret_sha256", String(64), nullable=False),
    Column("label", String(200), nullable=False),  # which device or vendor holds it
    Column("point_ids", Text, nullable=False),  # JSON list of the points it may push for
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("revoked_by", String(64)),
)

# Every authenticated push request, refused or not: a key's use, the durable inbox the push writer
# ingests from, and the idempotency record (a request id seen again is answered from here).
# Written by ``intake.push.inbox`` alone.
push_requests = Table(
    "push_requests",
    metadata,
    Column("push_id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", Integer, ForeignKey("api_keys.key_id"), nullable=False),
    Column("request_id", String(128), nullable=False),  # Idempotency-Key, or the body's sha256
    Column("received_at", UTCDateTime, nullable=False),
    # pending (in the inbox) | processing (a writer took it) | done | refused (4xx, not stored)
    Column("status", String(16), nullable=False),
    Column("status_code", Integer),
    Column("body_sha256", String(64)),
    Column("rows", Integer),
    Column("body", Text),  # the rows as a JSON array, until they are ingested
    Column("group_ref", String(64)),  # the writer's group: the ingest batch's source_ref
    Column("claimed_at", UTCDateTime),
    Column("batch_id", Integer, ForeignKey("ingest_batches.batch_id")),
    Column("finished_at", UTCDateTime),
    Column("response", Text),  # the JSON answered, replayed on a resend
    # One live request per (key, request id); refusals may repeat (a device fixes and resends).
    Index(
        "ux_push_requests_key_request",
        "key_id",
        "request_id",
        unique=True,
        sqlite_where=text("status <> 'refused'"),
        postgresql_where=text("status <> 'refused'"),
    ),
    Index("ix_push_requests_status", "status"),
)


# --- Alerts (issue 18): what reaches people outside the app. ------------------------------------

# The alert rule set: what (a case at or above a severity, a point silent in its open hours, a
# pipeline failure), its threshold, and to whom (a role's users, one user, or a channel URL).
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("rule_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("event", String(16), nullable=False),  # case | silence | failure
    Column("min_severity", String(16)),  # case: low | medium | high
    Column("silent_hours", Integer),  # silence: whole open hours without a sale
    Column("to_role", String(16)),  # every active user of this role (by their e-mail)
    Column("to_user", String(64)),  # one user (by their e-mail)
    Column("to_channel", Text),  # an Apprise URL (json://, tgram://, slack://, ...)
    Column("active", Integer, nullable=False, default=1),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Every alert and digest send attempt: what (subject_key), to whom, by which channel, when, and
# how it went. One "sending" or "sent" row per (subject_key, recipient), enforced by the
# database, is what makes an alert reach a recipient once even when two runs overlap.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("delivery_id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.rule_id")),  # NULL: the daily digest
    Column("what", String(16), nullable=False),  # case | silence | failure | digest
    Column("subject_key", String(200), nullable=False),  # "case:12", "silence:P1:<last sale>"
    Column(
        "recipient", String(300), nullable=False
    ),  # who, as deduplicated: "user:budi", "channel:<hash>"
    Column(
        "address", String(300), nullable=False
    ),  # where it went: an e-mail, a masked channel URL
    Column("channel", String(16), nullable=False),  # email | apprise
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),  # sending | sent | failed
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("error", Text),
    Index(
        "ux_alert_deliveries_once",
        "subject_key",
        "recipient",
        unique=True,
        sqlite_where=text("status IN ('sending', 'sent')"),
        postgresql_where=text("status IN ('sending', 'sent')"),
    ),
    Index("ix_alert_deliveries_started_at", "started_at"),
)
