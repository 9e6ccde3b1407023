"""What each part of the ``transactions`` table costs a bulk load: ADBC into table variants.

    python scripts/keyed_floor.py --rows 1000000 [--rounds 3] [--db both] [--json out.json]

The bench's ``store`` floor (ADBC's COPY binary into the real keyed table) runs far slower on
PostgreSQL than its ``bare`` floor; this splits that gap by part. One simulator feed (seed 7,
1,000 points, a year), parsed and sorted by (point, time) once as the bench's store stage does
(``_storable``); then the same Arrow chunks are bulk-loaded by ADBC, one transaction each load,
into a fresh table per variant: no key; the primary key (point_id, txn_id); + the
(point_id, occurred_at) index; + the BRIN on occurred_at (PostgreSQL); + the foreign key to
ingest_batches - each with the id columns in the database's default collation and in
COLLATE "C". Variants run interleaved, ``--rounds`` times (the order reversed every other
round), so a busy machine slows them alike; the table gives each variant's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# (name, C collation on the id columns, primary key, (point_id, occurred_at), BRIN, foreign key)
PG_VARIANTS = [
    ("bare", False, False, False, False, False),
    ("FK only", False, False, False, False, True),
    ("PK", False, True, False, False, False),
    ("PK + (point, time)", False, True, True, False, False),
    ("PK + (point, time) + BRIN", False, True, True, True, False),
    ("PK + (point, time) + BRIN + FK (today)", False, True, True, True, True),
    ('PK, COLLATE "C"', True, True, False, False, False),
    ('PK + (point, time), COLLATE "C"', True, True, True, False, False),
    ('PK + (point, time) + BRIN, COLLATE "C"', True, True, True, True, False),
    ('PK + (point, time) + BRIN + FK, COLLATE "C"', True, True, True, True, True),
]
SQLITE_VARIANTS = [
    ("bare", False, False, False, False, False),
    ("PK", False, True, False, False, False),
    ("PK + (point, time)", False, True, True, False, False),
    ("PK + (point, time) + FK on (today)", False, True, True, False, True),
]


def _columns(collate: bool, dialect: str) -> str:
    ids = ' COLLATE "C"' if collate else ""
    when = "TIMESTAMPTZ" if dialect == "postgresql" else "DATETIME"
    return (
        f"point_id VARCHAR(64){ids} NOT NULL, txn_id VARCHAR(128){ids} NOT NULL, "
        f"occurred_at {when} NOT NULL, amount BIGINT NOT NULL, "
        "payment_method VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, "
        f"operator_id VARCHAR(64){ids}, payer_ref VARCHAR(128), batch_id INTEGER NOT NULL"
    )


def _ddl(table: str, variant: tuple, dialect: str) -> list[str]:
    _, collate, pk, by_time, brin, fk = variant
    parts = [_columns(collate, dialect)]
    if pk:
        parts.append("PRIMARY KEY (point_id, txn_id)")
    if fk:
        parts.append("FOREIGN KEY (batch_id) REFERENCES ingest_batches (batch_id)")
    ddl = [f"CREATE TABLE {table} ({', '.join(parts)})"]
    if by_time:
        ddl.append(f"CREATE INDEX {table}_pt ON {table} (point_id, occurred_at)")
    if brin:
        ddl.append(f"CREATE INDEX {table}_brin ON {table} USING brin (occurred_at)")
    return ddl


def _chunks(feed: Path, chunk_rows: int, dialect: str, batch_id: int) -> list:
    """The feed's storable rows as the bench's store stage writes them: Arrow tables."""
    from pipeline.intake.feeds import read_feed
    from pipeline.testbed.bench.stages import _arrow_rows, _storable

    seen: set[int] = set()
    tables = []
    for chunk in read_feed(feed, chunk_rows=chunk_rows):
        frame, micros, amount = _storable(chunk.frame, seen)
        tables.append(_arrow_rows(dialect, frame, micros, amount, batch_id))
    return tables


def _batch_row(engine, feed: Path) -> int:
    from pipeline.store.schema import ingest_batches

    with engine.begin() as connection:
        return connection.execute(
            ingest_batches.insert()
            .values(source="bench", source_ref=str(feed), started_at=datetime.now(UTC), status="ok")
            .returning(ingest_batches.c.batch_id)
        ).scalar_one()


def _load_pg(uri: str, table: str, ddl: list[str], tables: list) -> float:
    import adbc_driver_postgresql.dbapi as adbc_pg

    with adbc_pg.connect(uri) as adbc, adbc.cursor() as cursor:
        for statement in ddl:
            cursor.execute(statement)
        adbc.commit()
        cursor.execute("CHECKPOINT")  # every load starts with no dirty pages of the last one
        adbc.commit()
        started = time.perf_counter()
        for part in tables:
            cursor.adbc_ingest(table, part, mode="append")
        adbc.commit()
        seconds = time.perf_counter() - started
        cursor.execute(f"DROP TABLE {table}")
        adbc.commit()
    return seconds


def _load_sqlite(path: str, table: str, ddl: list[str], tables: list, fk: bool) -> float:
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with adbc_sqlite.connect(path, autocommit=True) as adbc, adbc.cursor() as cursor:
        for statement in ddl:
            cursor.execute(statement)
        cursor.execute("PRAGMA cache_size=-262144")  # as ingest's writer
        cursor.execute(f"PRAGMA foreign_keys={'ON' if fk else 'OFF'}")  # the engine turns it on
        started = time.perf_counter()
        cursor.execute("BEGIN IMMEDIATE")
        for part in tables:
            cursor.adbc_ingest(table, part, mode="append")
        cursor.execute("COMMIT")
        seconds = time.perf_counter() - started
        cursor.execute(f"DROP TABLE {table}")
    return seconds


def measure(dialect: str, feed: Path, chunk_rows: int, rounds: int, work: Path) -> dict:
    from sqlalchemy import create_engine, text

    from pipeline.store import connect
    from pipeline.store.bulk import adbc_uri

    drop = None
    if dialect == "postgresql":
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"eincome_keyed_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)

        def drop():
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        variants = PG_VARIANTS
    else:
        url = f"sqlite:///{work / 'keyed.db'}"
        variants = SQLITE_VARIANTS
    try:
        engine = connect(url)  # the real schema, for ingest_batches (the foreign key's parent)
        batch_id = _batch_row(engine, feed)
        with engine.connect() as connection:
            target = adbc_uri(connection) if dialect == "postgresql" else engine.url.database
        engine.dispose()
        tables = _chunks(feed, chunk_rows, dialect, batch_id)
        rows = sum(t.num_rows for t in tables)
        seconds: dict[str, list[float]] = {v[0]: [] for v in variants}
        for number in range(rounds):
            order = variants if number % 2 == 0 else variants[::-1]
            for index, variant in enumerate(order):
                table = f"keyed_{number}_{index}"
                ddl = _ddl(table, variant, dialect)
                if dialect == "postgresql":
                    took = _load_pg(target, table, ddl, tables)
                else:
                    took = _load_sqlite(target, table, ddl, tables, fk=variant[5])
                seconds[variant[0]].append(round(took, 2))
                print(f"{dialect} round {number + 1} {variant[0]}: {took:.2f} s", flush=True)
    finally:
        if drop:
            drop()
    return {"rows": rows, "seconds": seconds}


def markdown(dialect: str, result: dict) -> str:
    rows = result["rows"]
    medians = {name: statistics.median(s) for name, s in result["seconds"].items()}
    bare = medians["bare"]
    lines = [
        f"| {dialect} table | median s | rows/s | x bare | every round, s |",
        "|---|---:|---:|---:|---|",
    ]
    for name, median in medians.items():
        each = ", ".join(f"{s:.2f}" for s in result["seconds"][name])
        lines.append(
            f"| {name} | {median:.2f} | {rows / median:,.0f} | {median / bare:.2f} | {each} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--json", help="write the seconds here")
    args = parser.parse_args()
    from pipeline.testbed.bench.run import generate_feed

    work = Path(tempfile.mkdtemp(prefix="eincome-keyed-"))
    feed = generate_feed(work, args.rows, args.points, quick=False)
    print(f"feed: {feed['rows']:,} rows, {args.points:,} points", flush=True)
    dialects = {"sqlite": ["sqlite"], "postgres": ["postgresql"]}.get(
        args.db, ["postgresql", "sqlite"]
    )
    report = {}
    for dialect in dialects:
        report[dialect] = measure(dialect, Path(feed["feed"]), args.chunk_rows, args.rounds, work)
    for dialect, result in report.items():
        print(markdown(dialect, result) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
