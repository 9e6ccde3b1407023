# The eincome image: Apache Airflow 3 with the eincome package installed, for every Airflow
# component and the review app in docker-compose.yml.
#
# The official image brings what Airflow 3.3 needs for a PostgreSQL metadata DB (psycopg2,
# asyncpg) and the Celery executor; eincome is installed on top with the project's exact pins.
# Keep the tag in step with the apache-airflow pin in pyproject.toml (tests/test_compose.py checks).
FROM apache/airflow:3.3.2-python3.11

ARG AIRFLOW_VERSION=3.3.2
USER airflow
WORKDIR /opt/eincome
COPY --chown=airflow:root pyproject.toml constraints.txt README.md /opt/eincome/src/
COPY --chown=airflow:root pipeline /opt/eincome/src/pipeline
# The validation suites are versioned files beside the package (expectations/), read at run time.
COPY --chown=airflow:root expectations /opt/eincome/src/expectations
# Pinning apache-airflow in the same command keeps pip from moving Airflow itself. Editable, so
# the package finds expectations/ next to it, exactly as in a checkout.
# The airflow extra too, so the Celery/PostgreSQL pieces are the pinned set the real-scheduler
# check (scripts/airflow_check.py) runs, not whatever the base image had.
RUN pip install --no-cache-dir -c /opt/eincome/src/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" -e "/opt/eincome/src[postgres,web,airflow,alerts]"
# The folders the compose volumes mount: made here, owned by group 0 and group-writable, so
# whatever AIRFLOW_UID the services run as (always with group 0) can write models and data.
USER root
RUN mkdir -p /opt/eincome/models /opt/eincome/var /opt/eincome/config \
    && chown -R airflow:0 /opt/eincome/models /opt/eincome/var \
    && chmod -R g+rwXs /opt/eincome/models /opt/eincome/var
USER airflow
