import pytest

from pipeline.core.errors import UnusableInputError
from pipeline.intake.sources import (
    HttpSource,
    LandingSource,
    SecretRef,
    SqlSource,
    env_secrets,
    find_source,
    load_sources,
    parse_sources,
    token_from_connection_uri,
)
from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT


def test_example_file_loads_every_kind():
    configs = load_sources(ROOT / "sources.example.yml")
    kinds = {type(c) for c in configs}
    assert kinds == {LandingSource, HttpSource, SqlSource}
    landing = find_source(configs, "kecamatan-kota")
    # Relative folders are taken relative to the file, not the working directory.
    assert landing.path == ROOT / "landing" / "kecamatan-kota"
    tapbox = find_source(configs, "tapbox")
    assert tapbox.token == SecretRef(env="TAPBOX_TOKEN")
    assert tapbox.fields["occurred_at"] == "tapped_at"


def test_every_problem_is_named_with_where_it_is():
    raw = {
        "sources": [
            {"name": "a", "kind": "landing", "path": "in", "archive": "in", "setle_seconds": 5},
            {
                "name": "Bad Name",
                "kind": "http",
                "url": "ftp://x",
                "token_env": "T",
                "token_connection": "c",
            },
            {
                "name": "pos",
                "kind": "sql",
                "url_env": "POS_URL",
                "table": "sales; drop",
                "watermark_column": "u",
                "columns": {"txn_id": "id"},
            },
            {"name": "a", "kind": "carrier-pigeon"},
        ]
    }
    with pytest.raises(UnusableInputError) as caught:
        parse_sources(raw, origin="sources.yml")
    message = str(caught.value)
    for expected in (
        "source #1 (a): unknown key(s) setle_seconds",
        "source #1 (a): 'archive' must be a different folder",
        "source #2 (Bad Name): name 'Bad Name'",
        "url 'ftp://x' must start with http",
        "give either 'token_env' or 'token_connection', not both",
        "'table' 'sales; drop' is not a plain [schema.]name",
        "must give point_id, occurred_at, amount, payment_method, status",
        "source #4 (a): kind 'carrier-pigeon' is not one of landing, http, sql",
    ):
        assert expected in message


def test_a_secret_pasted_into_the_file_is_refused():
    raw = {
        "sources": [
            {"name": "t", "kind": "http", "url": "https://x", "token_env": "eyJhbGciOi.secret"}
        ]
    }
    with pytest.raises(UnusableInputError, match="is not an environment variable name"):
        parse_sources(raw)


def test_duplicate_names_and_disabled_sources():
    entry = {"name": "a", "kind": "landing", "path": "in", "archive": "out"}
    with pytest.raises(UnusableInputError, match="name 'a' is used twice"):
        parse_sources({"sources": [entry, entry]})
    assert parse_sources({"sources": [entry, {**entry, "enabled": False}]})[0].name == "a"


def test_unknown_source_name_lists_the_known_ones():
    configs = parse_sources(
        {"sources": [{"name": "a", "kind": "landing", "path": "i", "archive": "o"}]}
    )
    with pytest.raises(UnusableInputError, match=r"no source named 'b' \(known: a\)"):
        find_source(configs, "b")


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(UnusableInputError, match="cannot read"):
        load_sources(tmp_path / "nope.yml")
    broken = tmp_path / "sources.yml"
    broken.write_text("sources: [\n")
    with pytest.raises(UnusableInputError, match="not valid YAML"):
        load_sources(broken)


def test_env_secrets_resolve_env_and_airflow_connection_uris():
    resolve = env_secrets({"TAPBOX_TOKEN": "tok", "AIRFLOW_CONN_POS_HOTEL": "postgres://u:p@h/db"})
    assert resolve(SecretRef(env="TAPBOX_TOKEN")) == "tok"
    assert resolve(SecretRef(connection="pos-hotel")) == "postgres://u:p@h/db"
    with pytest.raises(UnusableInputError, match=r"\$MISSING is not set"):
        resolve(SecretRef(env="MISSING"))
    with pytest.raises(UnusableInputError, match=r"set \$AIRFLOW_CONN_OTHER"):
        resolve(SecretRef(connection="other"))


def test_env_secrets_read_airflow_json_connections_too():
    environ = {
        "AIRFLOW_CONN_TAPBOX_API": '{"conn_type": "http", "password": "t/k n"}',
        "AIRFLOW_CONN_POS": '{"conn_type": "postgres", "extra": {"sqlalchemy_url": "postgresql+psycopg://h/db"}}',
    }
    resolve = env_secrets(environ)
    assert token_from_connection_uri(resolve(SecretRef(connection="tapbox_api"))) == "t/k n"
    assert resolve(SecretRef(connection="pos")) == "postgresql+psycopg://h/db"
