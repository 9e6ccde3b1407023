"""The one settings registry: every setting has a name, an environment variable, a default and help.

Settings are read from the environment once, at an entry point (CLI, DAG task, web app), and the
resulting ``Settings`` object is passed down. Pipeline functions never read the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time
from pathlib import Path

from pipeline.core.errors import UnusableInputError

# The languages the review app and the commands speak (their catalog: pipeline/review/locale).
LANGUAGES = ("id", "en")


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "home",
        "EINCOME_HOME",
        "./var",
        "Data directory: SQLite database, landing folders, exports.",
    ),
    Setting(
        "db_url",
        "EINCOME_DB_URL",
        "",
        "SQLAlchemy URL; empty means SQLite at $EINCOME_HOME/eincome.db.",
    ),
    Setting(
        "models_dir",
        "EINCOME_MODELS_DIR",
        "./models",
        "Where trained detector models are versioned.",
    ),
    Setting(
        "sources_file",
        "EINCOME_SOURCES",
        "sources.yml",
        "Pull sources configuration (landing, HTTP API, SQL).",
    ),
    Setting(
        "chunk_rows", "EINCOME_CHUNK_ROWS", "200000", "Rows per chunk when streaming a feed file."
    ),
    Setting(
        "future_tolerance_minutes",
        "EINCOME_FUTURE_TOLERANCE_MINUTES",
        "10",
        "A transaction time further than this in the future is quarantined.",
    ),
    Setting(
        "earliest_date",
        "EINCOME_EARLIEST_DATE",
        "2000-01-01",
        "A transaction time before this date (UTC, YYYY-MM-DD) is quarantined: a lost clock says 1970.",
    ),
    Setting(
        "secret_key",
        "EINCOME_SECRET_KEY",
        "",
        "Key that signs review-app sessions; empty: random per start.",
    ),
    Setting(
        "false_alarm_days",
        "EINCOME_FALSE_ALARM_DAYS",
        "30",
        "Days after a false-alarm decision during which the same kind of case at that point is not raised.",
    ),
    Setting(
        "secure_cookies",
        "EINCOME_SECURE_COOKIES",
        "0",
        "1: the review-app session cookie is sent over HTTPS only (set it when served behind TLS).",
    ),
    Setting(
        "session_idle_minutes",
        "EINCOME_SESSION_IDLE_MINUTES",
        "60",
        "A review-app sign-in unused this many minutes ends (each request renews it).",
    ),
    Setting(
        "session_hours",
        "EINCOME_SESSION_HOURS",
        "12",
        "A review-app sign-in ends this many hours after it began, however busy.",
    ),
    Setting(
        "language",
        "EINCOME_LANGUAGE",
        "id",
        "Language of the commands' messages and reasons: id (Bahasa Indonesia) or en (`--lang` "
        "overrides it); the web app follows each reader's own choice.",
    ),
    Setting(
        "recon_config",
        "EINCOME_RECON_CONFIG",
        "",
        "Reconciliation tolerances file (JSON/YAML); empty: defaults (`eincome recon config`).",
    ),
    Setting(
        "attachment_max_mb",
        "EINCOME_ATTACHMENT_MAX_MB",
        "10",
        "Largest evidence file (MB) the review app accepts on a case; files live under $EINCOME_HOME/attachments.",
    ),
    Setting(
        "airflow_db_url",
        "EINCOME_AIRFLOW_DB_URL",
        "",
        "Airflow's metadata database (SQLAlchemy URL, read-only user) for the ops page's DAG runs; empty: not shown.",
    ),
    Setting(
        "push_max_body_bytes",
        "EINCOME_PUSH_MAX_BODY_BYTES",
        "1048576",
        "Largest body a push request (POST /api/v1/transactions) may have; larger: 413.",
    ),
    Setting(
        "push_max_rows",
        "EINCOME_PUSH_MAX_ROWS",
        "1000",
        "Most rows one push request may carry; more: 413.",
    ),
    Setting(
        "push_rate",
        "EINCOME_PUSH_RATE",
        "50",
        "Push requests a second one API key may send, per server worker (bursts up to "
        "EINCOME_PUSH_BURST); more: 429. 0: no limit.",
    ),
    Setting(
        "push_burst",
        "EINCOME_PUSH_BURST",
        "100",
        "Push requests one API key may send at once before EINCOME_PUSH_RATE applies.",
    ),
    Setting(
        "push_wait_seconds",
        "EINCOME_PUSH_WAIT_SECONDS",
        "10",
        "How long a push request waits for its counts before it is answered 202 (stored, pending).",
    ),
    Setting(
        "smtp_host",
        "EINCOME_SMTP_HOST",
        "",
        "SMTP server alerts and digests are e-mailed through; empty: e-mail is off (sends are "
        "recorded failed).",
    ),
    Setting("smtp_port", "EINCOME_SMTP_PORT", "587", "Port of EINCOME_SMTP_HOST."),
    Setting(
        "smtp_user", "EINCOME_SMTP_USER", "", "SMTP login user; empty: send without logging in."
    ),
    Setting("smtp_password", "EINCOME_SMTP_PASSWORD", "", "SMTP login password."),
    Setting(
        "smtp_from",
        "EINCOME_SMTP_FROM",
        "eincome@localhost",
        "The From address of alert and digest e-mails.",
    ),
    Setting(
        "smtp_starttls",
        "EINCOME_SMTP_STARTTLS",
        "1",
        "1: upgrade the SMTP connection with STARTTLS before logging in (0: plain, e.g. a relay "
        "on localhost).",
    ),
    Setting(
        "review_url",
        "EINCOME_REVIEW_URL",
        "",
        "The review app's address as people open it (e.g. https://eincome.example.go.id); "
        "alerts link to their case there. Empty: no links.",
    ),
)


@dataclass(frozen=True)
class Settings:
    home: Path = Path("./var")
    db_url: str = ""
    models_dir: Path = Path("./models")
    sources_file: Path = Path("sources.yml")
    chunk_rows: int = 200_000
    future_tolerance_minutes: int = 10
    earliest_date: str = "2000-01-01"
    secret_key: str = field(default="", repr=False)
    false_alarm_days: int = 30
    secure_cookies: int = 0
    session_idle_minutes: int = 60
    session_hours: int = 12
    language: str = "id"
    recon_config: str = ""
    attachment_max_mb: int = 10
    airflow_db_url: str = field(default="", repr=False)  # may hold a password
    push_max_body_bytes: int = 1_048_576
    push_max_rows: int = 1_000
    push_rate: int = 50
    push_burst: int = 100
    push_wait_seconds: int = 10
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "eincome@localhost"
    smtp_starttls: int = 1
    review_url: str = ""

    @property
    def earliest_time(self) -> datetime:
        """``earliest_date`` as the UTC midnight it starts (checked in ``from_env``)."""
        return datetime.combine(date.fromisoformat(self.earliest_date), time(), tzinfo=UTC)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in force: EINCOME_DB_URL, or the embedded SQLite file."""
        return self.db_url or f"sqlite:///{(self.home / 'eincome.db').resolve()}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Build settings from the environment (checked here, at the boundary)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for setting in SETTINGS:
            raw = environ.get(setting.env, setting.default)
            kind = types[setting.name]
            if kind in ("int", int):
                try:
                    values[setting.name] = int(raw)
                except ValueError:
                    raise UnusableInputError(
                        f"setting {setting.env}={raw!r} is not a whole number ({setting.help})"
                    ) from None
            elif kind in ("Path", Path):
                values[setting.name] = Path(raw)
            else:
                values[setting.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            date.fromisoformat(str(values["earliest_date"]))
        except ValueError:
            raise UnusableInputError(
                f"setting EINCOME_EARLIEST_DATE={values['earliest_date']!r} is not a date "
                "(YYYY-MM-DD)"
            ) from None
        if values["language"] not in LANGUAGES:
            raise UnusableInputError(
                f"setting EINCOME_LANGUAGE={values['language']!r} is not one of "
                f"{', '.join(LANGUAGES)}"
            )
        return cls(**values)
