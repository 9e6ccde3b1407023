# The things people do. `make demo` and `make test` set up .venv on their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := postgres,web,airflow,alerts,dev

.PHONY: install chromium demo test test-fast test-ingest-property lint format bench push-load serve up down migration clean airflow-check backfill-scaling keyed-floor base-install-check

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's Chromium (Playwright never downloads a browser here); needs root.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation)

demo: install
	$(BIN)/eincome demo

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=20

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

# The ingest property test with many more and longer random feeds than `make test` runs.
test-ingest-property: install
	EINCOME_PROPERTY_EXAMPLES=300 EINCOME_PROPERTY_LINES=400 EINCOME_PROPERTY_RANDOM=1 \
		$(BIN)/python -m pytest -n 2 tests/intake/test_ingest_property.py

lint: install
	$(BIN)/ruff check pipeline dags tests
	$(BIN)/ruff format --check pipeline dags tests

format: install
	$(BIN)/ruff check --fix pipeline dags tests
	$(BIN)/ruff format pipeline dags tests

bench: install
	$(BIN)/python -m pipeline.testbed.bench

# The push API under load (scripts/push_load.py): dashboard latency at 200 sales/s from 50
# devices on SQLite and PostgreSQL, a kill -9 mid-stream, 1,000 one-row requests/s. Prints figures.
push-load: install
	$(BIN)/python scripts/push_load.py --db sqlite --seconds 60 --rate 200 --devices 50
	$(BIN)/python scripts/push_load.py --db postgres --seconds 60 --rate 200 --devices 50 --workers 2
	$(BIN)/python scripts/push_load.py --db sqlite --seconds 40 --rate 200 --devices 50 --kill-at 15
	$(BIN)/python scripts/push_load.py --db postgres --seconds 40 --rate 200 --devices 50 --workers 2 --kill-at 15
	$(BIN)/python scripts/push_load.py --db postgres --seconds 20 --small-requests 1000 --workers 2

serve: install
	$(BIN)/eincome serve

# The DAGs under a real Airflow 3 on 127.0.0.1 (PostgreSQL metadata DB; LocalExecutor, then
# Celery with Redis): scheduled, manual and backfill runs checked against the CLI. ~20 minutes.
airflow-check: install
	$(BIN)/python scripts/airflow_check.py

# The fanned-out backfill DAG timed under Celery with 1 and 2 workers against one process
# (PostgreSQL + Redis on 127.0.0.1; POINTS x WEEKS of simulated trade). ~15 minutes at the default.
POINTS ?= 100
WEEKS  ?= 9
backfill-scaling: install
	mkdir -p bench-results && $(BIN)/python scripts/backfill_scaling.py --points $(POINTS) --weeks $(WEEKS) --json bench-results/backfill-scaling.json

# What each part of the transactions table (key, index, BRIN, foreign key, collation) costs a
# bulk load, 1M rows by ADBC into each variant, both databases (PostgreSQL on 127.0.0.1). ~10 min.
keyed-floor: install
	mkdir -p bench-results && $(BIN)/python scripts/keyed_floor.py --rows 1000000 --json bench-results/keyed-floor.json

up:
	docker compose up -d --build

down:
	docker compose down

# make migration m="add reconciliation tables"
migration: install
	$(BIN)/alembic -c pipeline/store/alembic.ini -x url=sqlite:///$(CURDIR)/var/migration-draft.db upgrade head
	$(BIN)/alembic -c pipeline/store/alembic.ini -x url=sqlite:///$(CURDIR)/var/migration-draft.db revision --autogenerate -m "$(m)"
	rm -f var/migration-draft.db

clean:
	rm -rf $(VENV) var

# A plain `pip install eincome` (no extras) in a fresh venv: points, ingest, backfill, anomalies, cases.
base-install-check:
	bash scripts/base_install_check.sh
