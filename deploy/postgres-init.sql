-- Runs once, on the first start of the postgres service (an empty data volume).
-- POSTGRES_DB creates the Airflow metadata database; eincome keeps its own database so the two
-- Alembic histories (both use an alembic_version table) never meet.
CREATE DATABASE eincome OWNER eincome;
