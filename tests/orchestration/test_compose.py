"""docker-compose.yml cannot be run here (no Docker), so it is checked for consistency instead:
the things that, when wrong, make `make up` fail or run against the wrong database."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _postgres(services) -> tuple[str, set[str]]:
    """The postgres service's user and the databases it creates (POSTGRES_DB + init script)."""
    env = services["postgres"]["environment"]
    databases = {env["POSTGRES_DB"]}
    for volume in services["postgres"].get("volumes", []):
        host, _, container = volume.partition(":")
        if container.startswith("/docker-entrypoint-initdb.d/"):
            sql = (ROOT / host).read_text()
            databases |= set(re.findall(r"CREATE DATABASE (\w+)", sql, flags=re.I))
    return env["POSTGRES_USER"], databases


def _expand(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults, as on a laptop without a .env."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


REQUIRED_SECRETS = {
    "AIRFLOW__CORE__FERNET_KEY": "AIRFLOW_FERNET_KEY",
    "AIRFLOW__API__SECRET_KEY": "AIRFLOW_SECRET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET": "AIRFLOW_JWT_SECRET",
}


def test_every_service_has_an_image_or_a_build(services):
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name


def test_all_airflow_components_are_there_and_share_one_environment_with_celery(services):
    envs = [services[name]["environment"] for name in AIRFLOW_SERVICES]
    for name, env in zip(AIRFLOW_SERVICES, envs, strict=True):
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
    # The worker extends the anchor; everything the others have, it has with the same value.
    common = envs[0]
    for name, env in zip(AIRFLOW_SERVICES, envs, strict=True):
        assert {k: env.get(k) for k in common} == common, name
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }


def test_broker_points_at_the_redis_service(services):
    env = services["airflow-worker"]["environment"]
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis"
    assert broker.hostname in services and services[broker.hostname]["image"].startswith("redis")


@pytest.mark.parametrize(
    "variable",
    ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "EINCOME_DB_URL"],
)
def test_database_urls_point_at_the_postgres_service_with_its_user_and_a_database_it_creates(
    services, variable
):
    user, databases = _postgres(services)
    password = _expand(services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    for name in (*AIRFLOW_SERVICES, "review", "airflow-init"):
        url = urlsplit(_expand(services[name]["environment"][variable]).removeprefix("db+"))
        assert url.scheme.startswith("postgresql"), (name, variable)
        assert url.hostname == "postgres" and url.hostname in services, (name, variable)
        assert (url.username, url.password) == (user, password), (name, variable)
        assert url.path.lstrip("/") in databases, (name, variable, databases)


def test_airflow_and_eincome_keep_separate_databases(services):
    env = services["airflow-scheduler"]["environment"]
    airflow_db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).path
    eincome_db = urlsplit(env["EINCOME_DB_URL"]).path
    # Both run Alembic with an `alembic_version` table: one database would mix the histories.
    assert airflow_db != eincome_db


def test_dags_are_mounted_at_the_configured_dags_folder(services):
    for name in AIRFLOW_SERVICES:
        folder = services[name]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts.get(folder) == "./dags", name
    assert (ROOT / "dags").is_dir()


def test_eincome_settings_in_the_containers_are_real_settings_and_paths_are_mounted(services):
    from pipeline.core.settings import SETTINGS

    known = {s.env for s in SETTINGS}
    env = services["airflow-worker"]["environment"]
    eincome = {k for k in env if k.startswith("EINCOME_")}
    assert eincome <= known, eincome - known
    mounts = [v.split(":")[1] for v in services["airflow-worker"]["volumes"]]
    for variable in ("EINCOME_HOME", "EINCOME_MODELS_DIR", "EINCOME_SOURCES"):
        assert any(env[variable].startswith(m) for m in mounts), variable
    # The sources file the containers read exists and is valid.
    from pipeline.intake.sources import load_sources

    host_config = next(
        v.split(":")[0] for v in services["airflow-worker"]["volumes"] if "/opt/eincome/config" in v
    )
    assert load_sources(ROOT / host_config / Path(env["EINCOME_SOURCES"]).name)


def test_depends_on_and_healthchecks_refer_to_existing_services(services):
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
            if condition["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", dependency
        assert name not in (service.get("depends_on") or {}), name


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, (name, source)
            else:
                assert (ROOT / source).exists() or source == "./var", (name, source)


def test_image_airflow_version_matches_the_pinned_one():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [pin] = [
        d
        for d in pyproject["project"]["optional-dependencies"]["airflow"]
        if d.startswith("apache-airflow==")
    ]
    version = pin.split("==")[1]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(
        rf"^FROM apache/airflow:{re.escape(version)}(-python[\d.]+)?$", dockerfile, re.M
    )
    assert f"ARG AIRFLOW_VERSION={version}" in dockerfile
    assert f"apache-airflow=={version}" in (ROOT / "constraints.txt").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["airflow-scheduler"]["image"].endswith(f":{version}")


def test_image_installs_the_package_with_the_constraints():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=airflow:root pipeline " in dockerfile
    assert re.search(r"pip install .*-c \S*constraints\.txt", dockerfile.replace("\\\n", " "))


def test_image_carries_the_expectation_suites_where_the_package_looks_for_them():
    """Regression: a plain (non-editable) install left expectations/ out of the image, and every
    validation would have failed with "expectation suite ... is missing"."""
    from pipeline.intake import validate

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=airflow:root expectations /opt/eincome/src/expectations" in dockerfile
    assert re.search(r"pip install .* -e \"/opt/eincome/src\[", dockerfile.replace("\\\n", " "))
    # Every suite loads from <checkout>/expectations, through the package's link to it.
    assert validate.EXPECTATIONS_DIR.resolve() == (ROOT / "expectations").resolve()


def test_review_app_serves_on_all_interfaces_on_port_8000(services):
    review = services["review"]
    assert review["entrypoint"] == ["eincome"]
    assert review["command"][:3] == ["serve", "--host", "0.0.0.0"]
    assert "8000:8000" in review["ports"]


def test_airflow_secrets_are_required_from_the_environment_and_shared(services):
    """Regression: an empty Fernet key (connections stored unencrypted) and no shared
    [api] secret_key (the UI could not fetch worker logs). Compose's ${VAR:?...} refuses to
    start without them; every Airflow service gets the same variable."""
    example = (ROOT / ".env.example").read_text()
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        env = services[name]["environment"]
        for setting, variable in REQUIRED_SECRETS.items():
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env[setting]), (name, setting)
    for variable in REQUIRED_SECRETS.values():
        assert re.search(rf"^{variable}=$", example, re.M), variable
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_volumes_are_writable_by_the_user_the_services_run_as(services):
    """Regression: the eincome-models named volume was mounted on a path the image did not
    create, so it was root's while the services run as AIRFLOW_UID: the first training could
    not write its model. The image makes every mounted eincome folder group-0 writable, and
    airflow-init (as root) hands them to AIRFLOW_UID."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    init = services["airflow-init"]
    assert init["user"] == "0:0"
    init_command = " ".join(init["command"])
    for name in AIRFLOW_SERVICES:
        assert services[name]["user"].endswith(":0"), name  # group 0 on every service
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if target.startswith("/opt/eincome/") and not volume.endswith(":ro"):
                assert re.search(rf"mkdir -p [^&]*{re.escape(target)}\b", dockerfile), target
                assert re.search(rf"chmod -R g\+rwXs? [^&]*{re.escape(target)}\b", dockerfile)
                assert re.search(rf"chown -R \S+ [^&]*{re.escape(target)}\b", init_command), target


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if service.get("restart") != "no":
            assert "healthcheck" in service, name
    worker = " ".join(services["airflow-worker"]["healthcheck"]["test"])
    assert "inspect ping" in worker


def test_pinned_celery_is_one_the_celery_provider_can_import():
    """Regression: celery 5.7.0 dropped celery.backends.database.retry, which
    apache-airflow-providers-celery 3.26 imports: the scheduler and worker exited at start."""
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    major, minor = (int(x) for x in pins["celery"].split(".")[:2])
    assert (major, minor) < (5, 6), pins["celery"]
    assert pins["kombu"].startswith("5.5.")


def test_a_postgresql_metadata_database_has_its_drivers():
    """Regression: `airflow db migrate` on PostgreSQL failed with No module named 'asyncpg'
    (Airflow 3.3 derives an async URL); the airflow extra now brings psycopg2 and asyncpg."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = " ".join(pyproject["project"]["optional-dependencies"]["airflow"])
    constraints = (ROOT / "constraints.txt").read_text()
    for package in ("asyncpg", "psycopg2-binary"):
        assert package in extra, package
        assert re.search(rf"^{package}==", constraints, re.M), package
