"""Pull sources: landing folders, HTTP APIs and POS database tables, configured in sources.yml.

Each kind's ``pull`` stores what it finds through the ingest stage and returns its
``BatchResult``s; ``pull_source`` dispatches on the config's kind.
"""

from __future__ import annotations

from sqlalchemy import Engine

from pipeline.intake.sources.config import (
    HttpSource,
    LandingSource,
    SecretRef,
    SecretResolver,
    SourceConfig,
    SqlSource,
    env_secrets,
    find_source,
    load_sources,
    parse_sources,
    token_from_connection_uri,
)

__all__ = [
    "HttpSource",
    "LandingSource",
    "SecretRef",
    "SecretResolver",
    "SourceConfig",
    "SqlSource",
    "env_secrets",
    "find_source",
    "load_sources",
    "parse_sources",
    "pull_source",
]


def pull_source(
    engine: Engine, config: SourceConfig, *, secrets: SecretResolver, **options
) -> list:
    """Pull one source of any kind; secrets (token, POS URL) are resolved through ``secrets``."""
    if isinstance(config, LandingSource):
        from pipeline.intake.sources.landing import pull_landing

        return pull_landing(engine, config, **options)
    if isinstance(config, HttpSource):
        from pipeline.intake.sources.http_api import pull_http

        token = None
        if config.token is not None:
            token = secrets(config.token)
            if config.token.connection:
                token = token_from_connection_uri(token)
        return pull_http(engine, config, token=token, **options)
    if isinstance(config, SqlSource):
        from pipeline.intake.sources.sql_table import pull_sql

        return pull_sql(engine, config, url=secrets(config.url), **options)
    raise TypeError(f"unknown source config {config!r}")
