# Two commands: `make run` (embedded: SQLite, in-process tasks) and `make test` (the whole suite).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PUBLIC_BASE_URL ?= http://127.0.0.1:$(PORT)
# The embedded run and the tests use local placeholders; `make up` takes the environment as it is.
run test: export ALLOW_DEBUG ?= 1
TEST_WORKERS ?= 2

.PHONY: run up test install install-dev lint bench bench-scale soak clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Test-only node tools (anvil, ERC-20 artifacts), pinned in package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev node_modules/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# Web, worker and beat together (Procfile), on Redis. `release` (migrate) runs first, alone:
# honcho stops every process as soon as one exits.
up: install
	@test -n "$$REDIS_URL" || { echo "Set REDIS_URL (and DATABASE_URL) first, e.g. REDIS_URL=redis://127.0.0.1:6379/0"; exit 2; }
	$(BIN)/python manage.py migrate --noinput
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start web worker beat

test: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --create-db $(PYTEST_ARGS)

# The load benchmark (never part of `make test`); BENCH_ARGS="--workers 4" etc. See docs/performance.md.
bench: install-dev
	bench/prepare.sh
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# A year of sales: 1M sessions for one merchant against an empty one (dashboard, exports, API).
# Keeps its database (payments_scale_bench) between runs; SCALE_ARGS="--fresh --runs 50" etc.
bench-scale: install-dev
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# Payments with duplicates, out of order, and the worker SIGKILLed halfway; SOAK_ARGS="--sessions 1000" etc.
# Needs PostgreSQL and Redis on 127.0.0.1. `make test` runs it at 60 sessions (tests/test_soak.py).
soak: install-dev
	$(BIN)/python bench/soak.py --output bench/results/soak.json $(SOAK_ARGS)

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) data
