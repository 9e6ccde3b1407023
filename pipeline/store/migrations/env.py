"""Alembic environment: runs on the connection handed over by pipeline.store.db.upgrade."""

from alembic import context
from sqlalchemy import create_engine

from pipeline.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # `alembic` command line (autogenerate): sqlalchemy.url from -x url=... or the ini
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
