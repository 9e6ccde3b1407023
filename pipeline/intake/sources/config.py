"""The pull-sources file (``sources.yml``): parsed and checked into typed configs.

Secrets never live in the file. A source names where its secret is: an environment variable
(``token_env`` / ``url_env``) or an Airflow connection (``token_connection`` / ``connection``).
The entry point (CLI or DAG task) resolves it with a ``SecretResolver``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.core.errors import UnusableInputError
from pipeline.intake.feeds import FEED_COLUMNS
from pipeline.intake.feeds import REQUIRED_COLUMNS as REQUIRED_FEED_COLUMNS

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable or an Airflow connection id."""

    env: str | None = None
    connection: str | None = None

    def describe(self) -> str:
        return f"${self.env}" if self.env else f"Airflow connection {self.connection!r}"


@dataclass(frozen=True)
class LandingSource:
    """A folder collection points drop feed files into."""

    name: str
    path: Path
    archive: Path
    pattern: str = "*.csv*"
    settle_seconds: int = 30
    kind: str = field(default="landing", init=False)


@dataclass(frozen=True)
class HttpSource:
    """A vendor/gateway API returning pages of transactions after a ``since`` cursor."""

    name: str
    url: str
    token: SecretRef | None = None
    since_param: str = "since"
    limit_param: str = "limit"
    page_size: int = 500
    items_key: str = "items"
    next_cursor_key: str = "next_cursor"
    start_cursor: str = ""
    max_pages: int = 1000
    timeout_seconds: float = 30.0
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    fields: Mapping[str, str] = field(default_factory=dict)  # feed column -> API field
    kind: str = field(default="http", init=False)


@dataclass(frozen=True)
class SqlSource:
    """A table of a POS database, read incrementally by a watermark column."""

    name: str
    url: SecretRef
    table: str
    watermark_column: str
    key_column: str
    columns: Mapping[str, str]  # feed column -> table column
    constants: Mapping[str, str] = field(default_factory=dict)  # feed column -> fixed value
    timezone: str = "Asia/Jakarta"  # for naive times the POS stores in local time
    batch_rows: int = 5000
    max_batches: int = 1000
    kind: str = field(default="sql", init=False)


SourceConfig = LandingSource | HttpSource | SqlSource

_COMMON = {"name", "kind", "enabled"}
_KEYS = {
    "landing": _COMMON | {"path", "archive", "pattern", "settle_seconds"},
    "http": _COMMON
    | {
        "url",
        "token_env",
        "token_connection",
        "since_param",
        "limit_param",
        "page_size",
        "items_key",
        "next_cursor_key",
        "start_cursor",
        "max_pages",
        "timeout_seconds",
        "max_attempts",
        "backoff_seconds",
        "fields",
    },
    "sql": _COMMON
    | {
        "url_env",
        "connection",
        "table",
        "watermark_column",
        "key_column",
        "columns",
        "constants",
        "timezone",
        "batch_rows",
        "max_batches",
    },
}


class _Checker:
    """Reads one source entry, collecting every problem with where it is."""

    def __init__(self, where: str, raw: Mapping[str, Any]):
        self.where = where
        self.raw = raw
        self.problems: list[str] = []

    def fail(self, message: str) -> None:
        self.problems.append(f"{self.where}: {message}")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw.get(key, default)
        if value is None:
            if required:
                self.fail(f"'{key}' is required")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value) == "":
            self.fail(f"'{key}' must be a non-empty text, got {value!r}")
            return None
        return str(value)

    def number(self, key: str, default: float, *, integer: bool = True, minimum: float = 0):
        value = self.raw.get(key, default)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value < minimum:
            kind = "a whole number" if integer else "a number"
            self.fail(f"'{key}' must be {kind} >= {minimum:g}, got {value!r}")
            return default
        return value

    def mapping(self, key: str) -> dict[str, str]:
        value = self.raw.get(key) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | int) for k, v in value.items()
        ):
            self.fail(f"'{key}' must map feed columns to names, got {value!r}")
            return {}
        unknown = sorted(set(value) - set(FEED_COLUMNS))
        if unknown:
            self.fail(
                f"'{key}' has unknown feed column(s) {', '.join(unknown)}; known: {', '.join(FEED_COLUMNS)}"
            )
        return {k: str(v) for k, v in value.items()}

    def secret(self, env_key: str, conn_key: str, *, required: bool) -> SecretRef | None:
        env, conn = self.text(env_key), self.text(conn_key)
        if env and conn:
            self.fail(f"give either '{env_key}' or '{conn_key}', not both")
        if not env and not conn:
            if required:
                self.fail(
                    f"'{env_key}' (an environment variable) or '{conn_key}' (an Airflow connection) is required"
                )
            return None
        if env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            self.fail(
                f"'{env_key}' {env!r} is not an environment variable name (the secret itself never goes here)"
            )
        return SecretRef(env=env, connection=conn)


def _folder(checker: _Checker, key: str, base: Path) -> Path:
    value = checker.text(key, required=True) or "."
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def _parse_one(where: str, raw: Mapping[str, Any], base: Path) -> SourceConfig | None:
    check = _Checker(where, raw)
    kind = raw.get("kind")
    if kind not in _KEYS:
        check.fail(f"kind {kind!r} is not one of {', '.join(_KEYS)}")
        return check
    unknown = sorted(set(raw) - _KEYS[kind])
    if unknown:
        check.fail(f"unknown key(s) {', '.join(map(str, unknown))} for a {kind} source")
    name = check.text("name", required=True) or "?"
    if name != "?" and not _NAME.match(name):
        check.fail(f"name {name!r} must be lowercase letters, digits, '-' or '_'")
    config: SourceConfig | None = None
    if kind == "landing":
        path = _folder(check, "path", base)
        archive = _folder(check, "archive", base)
        if path == archive:
            check.fail("'archive' must be a different folder from 'path'")
        config = LandingSource(
            name=name,
            path=path,
            archive=archive,
            pattern=check.text("pattern", "*.csv*"),
            settle_seconds=check.number("settle_seconds", 30),
        )
    elif kind == "http":
        url = check.text("url", required=True) or ""
        if url and urlsplit(url).scheme not in ("http", "https"):
            check.fail(f"url {url!r} must start with http:// or https://")
        config = HttpSource(
            name=name,
            url=url,
            token=check.secret("token_env", "token_connection", required=False),
            since_param=check.text("since_param", "since"),
            limit_param=check.text("limit_param", "limit"),
            page_size=check.number("page_size", 500, minimum=1),
            items_key=check.text("items_key", "items"),
            next_cursor_key=check.text("next_cursor_key", "next_cursor"),
            start_cursor=str(raw.get("start_cursor") or ""),
            max_pages=check.number("max_pages", 1000, minimum=1),
            timeout_seconds=float(
                check.number("timeout_seconds", 30.0, integer=False, minimum=0.1)
            ),
            max_attempts=check.number("max_attempts", 4, minimum=1),
            backoff_seconds=float(check.number("backoff_seconds", 1.0, integer=False)),
            fields=check.mapping("fields"),
        )
    else:
        columns = check.mapping("columns")
        constants = check.mapping("constants")
        missing = [c for c in REQUIRED_FEED_COLUMNS if c not in columns and c not in constants]
        if missing:
            check.fail(f"'columns' (or 'constants') must give {', '.join(missing)}")
        for key in ("table", "watermark_column", "key_column"):
            value = raw.get(key)
            if value is not None and not _SQL_NAME.match(str(value)):
                check.fail(f"'{key}' {value!r} is not a plain [schema.]name")
        for feed_column, column in columns.items():
            if not _SQL_NAME.match(column) or "." in column:
                check.fail(f"column {column!r} (for {feed_column}) is not a plain column name")
        zone = check.text("timezone", "Asia/Jakarta")
        try:
            ZoneInfo(zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            check.fail(f"timezone {zone!r} is unknown")
        config = SqlSource(
            name=name,
            url=check.secret("url_env", "connection", required=True) or SecretRef(),
            table=check.text("table", required=True) or "",
            watermark_column=check.text("watermark_column", required=True) or "",
            key_column=check.text("key_column", columns.get("txn_id")) or "",
            columns=columns,
            constants=constants,
            timezone=zone or "Asia/Jakarta",
            batch_rows=check.number("batch_rows", 5000, minimum=1),
            max_batches=check.number("max_batches", 1000, minimum=1),
        )
    return check if check.problems else config


def parse_sources(
    raw: Any, *, origin: str = "sources.yml", base: Path = Path(".")
) -> list[SourceConfig]:
    """Check a parsed sources document; every problem is reported at once, with where it is."""
    if raw is None:
        raw = {"sources": []}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("sources", []), list):
        raise UnusableInputError(f"{origin}: expected a mapping with a 'sources:' list")
    unknown = sorted(set(raw) - {"sources"})
    problems = (
        [f"{origin}: unknown top-level key(s) {', '.join(map(str, unknown))}"] if unknown else []
    )
    configs: list[SourceConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw.get("sources") or [], start=1):
        label = entry.get("name") if isinstance(entry, Mapping) else None
        where = f"{origin} source #{index}" + (f" ({label})" if label else "")
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping, got {entry!r}")
            continue
        if entry.get("enabled", True) is False:
            continue
        parsed = _parse_one(where, entry, base)
        if isinstance(parsed, _Checker):
            problems.extend(parsed.problems)
            continue
        if parsed.name in seen:
            problems.append(f"{where}: name {parsed.name!r} is used twice")
        seen.add(parsed.name)
        configs.append(parsed)
    if problems:
        raise UnusableInputError("; ".join(problems))
    return configs


def load_sources(path: Path) -> list[SourceConfig]:
    """Read and check a sources file. Relative folders are relative to the file's own folder."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UnusableInputError(f"sources file {path}: cannot read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnusableInputError(f"sources file {path}: not valid YAML ({exc})") from None
    return parse_sources(raw, origin=str(path), base=Path(path).resolve().parent)


def find_source(configs: list[SourceConfig], name: str) -> SourceConfig:
    """The source called ``name``, or an error listing the known names."""
    for config in configs:
        if config.name == name:
            return config
    known = ", ".join(c.name for c in configs) or "none configured"
    raise UnusableInputError(f"no source named {name!r} (known: {known})")


SecretResolver = Callable[[SecretRef], str]


def env_secrets(environ: Mapping[str, str]) -> SecretResolver:
    """Resolve secrets from an environment mapping.

    A connection reference is read the way Airflow itself reads connections from the
    environment (``AIRFLOW_CONN_<ID>`` holding a URI), so the CLI and a DAG agree. For a
    URI, the password is the token; a SQL URL is returned whole.
    """

    def resolve(ref: SecretRef) -> str:
        if ref.env:
            value = environ.get(ref.env, "")
            if not value:
                raise UnusableInputError(
                    f"environment variable ${ref.env} is not set (secret for a source)"
                )
            return value
        variable = f"AIRFLOW_CONN_{(ref.connection or '').upper().replace('-', '_')}"
        value = environ.get(variable, "").strip()
        if not value:
            raise UnusableInputError(
                f"Airflow connection {ref.connection!r} is not defined here (set ${variable} to its URI)"
            )
        return connection_uri_from_json(value, variable) if value.startswith("{") else value

    return resolve


def connection_uri_from_json(value: str, where: str) -> str:
    """Airflow also accepts a connection as JSON; make it the URI form the sources use
    (``extra.sqlalchemy_url`` wins for a database)."""
    import json
    from urllib.parse import quote

    try:
        conn = json.loads(value)
    except ValueError:
        raise UnusableInputError(f"${where} is neither a connection URI nor valid JSON") from None
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    if extra.get("sqlalchemy_url"):
        return extra["sqlalchemy_url"]
    auth = ""
    if conn.get("login") or conn.get("password"):
        auth = f"{quote(conn.get('login') or '', safe='')}:{quote(conn.get('password') or '', safe='')}@"
    port = f":{conn['port']}" if conn.get("port") else ""
    schema = f"/{conn['schema']}" if conn.get("schema") else ""
    return f"{conn.get('conn_type') or 'generic'}://{auth}{conn.get('host') or ''}{port}{schema}"


def token_from_connection_uri(uri: str) -> str:
    """The bearer token in a connection URI (its password), or the value itself if not a URI."""
    parts = urlsplit(uri)
    return unquote(parts.password) if parts.scheme and parts.password else uri
