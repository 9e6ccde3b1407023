"""SQL table source: a POS database table read incrementally by a watermark column.

Rows are read in (watermark, key) order after the stored position, so rows sharing one
watermark value are never split and lost at a slice boundary. Columns are read without type
conversion and the position is stored exactly as the database returned it, so comparing
against it later means the same thing on SQLite text timestamps and PostgreSQL timestamptz.
The position advances only after the slice is stored.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, column, or_, select, table
from sqlalchemy.exc import SQLAlchemyError

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources.config import SqlSource
from pipeline.intake.sources.errors import SourceUnavailableError
from pipeline.intake.sources.watermarks import get_watermark, set_watermark

_CONFIG_PROBLEM = re.compile(
    r"no such (table|column)|does not exist|unknown column|syntax error|permission denied", re.I
)


def encode_position(value: object, key: object) -> str:
    """The stored cursor: the last row's watermark and key, with their Python types kept."""

    def tag(v: object) -> dict:
        if isinstance(v, datetime):
            return {"t": "datetime", "v": v.isoformat()}
        if isinstance(v, date):
            return {"t": "date", "v": v.isoformat()}
        if isinstance(v, Decimal):
            return {"t": "decimal", "v": str(v)}
        if isinstance(v, bool | int | float | str) or v is None:
            return {"t": "plain", "v": v}
        return {"t": "plain", "v": str(v)}

    return json.dumps({"watermark": tag(value), "key": tag(key)})


def decode_position(cursor: str) -> tuple[object, object]:
    def untag(d: dict) -> object:
        kind, v = d["t"], d["v"]
        if kind == "datetime":
            return datetime.fromisoformat(v)
        if kind == "date":
            return date.fromisoformat(v)
        if kind == "decimal":
            return Decimal(v)
        return v

    data = json.loads(cursor)
    return untag(data["watermark"]), untag(data["key"])


def sqlalchemy_url(value: str) -> str:
    """A SQLAlchemy URL from an env value or an Airflow connection URI (``postgres://...``)."""
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix) :]
    return value


def _occurred_at_iso(value: object, zone: ZoneInfo) -> object:
    """ISO-8601 with offset; naive POS times are in the POS's local zone. Unparseable values are
    passed on as they are, so the ingest quarantines the row with its reason."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).isoformat()
    return value


def _slice_frame(config: SqlSource, rows: list[dict]):
    import pandas as pd

    zone = ZoneInfo(config.timezone)
    records = []
    for row in rows:
        record = {feed: row[f"c_{feed}"] for feed in config.columns}
        record.update(config.constants)
        record["occurred_at"] = _occurred_at_iso(record.get("occurred_at"), zone)
        for feed in ("txn_id", "point_id"):
            if record.get(feed) is not None:
                record[feed] = str(record[feed])
        records.append(record)
    # object: values stay as the POS returned them (an int column with a NULL is not float64).
    return pd.DataFrame(records, dtype=object)


def _pos_engine(config: SqlSource, url: str) -> Engine:
    """An engine on the POS database. Plain: nothing is set on someone else's database (our own
    store's SQLite pragmas, such as WAL, would persist in the POS file)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError

    try:
        return create_engine(sqlalchemy_url(url), pool_pre_ping=True)
    except (ArgumentError, ModuleNotFoundError) as exc:
        # The URL may hold a password: name where it came from, not the URL.
        raise UnusableInputError(
            f"source {config.name}: the database URL in {config.url.describe()} cannot be used "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        ) from None


def pull_sql(engine: Engine, config: SqlSource, *, url: str) -> list:
    """Read new rows slice by slice (``batch_rows``) from the stored position; returns BatchResults."""
    from pipeline.intake.ingest import ingest_frame

    source = f"sql:{config.name}"
    schema, _, name = config.table.rpartition(".")
    wanted = {config.watermark_column, config.key_column, *config.columns.values()}
    pos = table(name, *[column(c) for c in sorted(wanted)], schema=schema or None)
    watermark, key = pos.c[config.watermark_column], pos.c[config.key_column]
    query = select(
        watermark.label("_watermark"),
        key.label("_key"),
        *[pos.c[c].label(f"c_{feed}") for feed, c in config.columns.items()],
    ).order_by(watermark, key)

    stored = get_watermark(engine, source)
    position = decode_position(stored) if stored else None
    pos_engine = _pos_engine(config, url)
    results = []
    try:
        for _ in range(config.max_batches):
            page = query.limit(config.batch_rows)
            if position is not None:
                last_value, last_key = position
                page = page.where(
                    or_(watermark > last_value, and_(watermark == last_value, key > last_key))
                )
            try:
                with pos_engine.connect() as connection:
                    rows = [dict(r._mapping) for r in connection.execute(page)]
            except SQLAlchemyError as exc:
                problem = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                message = f"source {config.name}: cannot read {config.table} ({config.url.describe()}): {problem}"
                # A wrong table or column is the config's fault; anything else (refused
                # connection, timeout) may pass, so the task is retried.
                if _CONFIG_PROBLEM.search(problem):
                    raise UnusableInputError(message) from None
                raise SourceUnavailableError(message) from None
            if not rows:
                break
            first, last = rows[0], rows[-1]
            results.append(
                ingest_frame(
                    engine,
                    _slice_frame(config, rows),
                    source=source,
                    source_ref=f"{config.table} {config.watermark_column} "
                    f"{first['_watermark']}..{last['_watermark']} ({len(rows)} rows)",
                )
            )
            position = (last["_watermark"], last["_key"])
            set_watermark(engine, source, encode_position(*position))
            if len(rows) < config.batch_rows:
                break
    finally:
        pos_engine.dispose()
    return results
