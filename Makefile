# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    create .venv, install the pinned requirements, migrate, serve on :8000
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench bench-engines screenshot serve-many clean

$(BIN)/activate: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

run: $(BIN)/activate
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py demo_user
	$(BIN)/daphne -b $(HOST) -p $(PORT) asgi_config.asgi:application

test: $(BIN)/activate
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/activate
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/mypy .

# The performance suite (docs/performance.md); e.g. make bench BENCH_ARGS="--quick --json bench.json"
bench: $(BIN)/activate
	$(BIN)/python scripts/bench/run.py $(BENCH_ARGS)

# Each engine and channel layer, one and two processes (needs PostgreSQL and Redis; docs/performance.md)
bench-engines: $(BIN)/activate
	$(BIN)/python scripts/bench_engines.py $(BENCH_ARGS)

screenshot: $(BIN)/activate
	$(BIN)/python scripts/screenshot.py docs/screenshot.png

PROCESSES ?= 2
serve-many: $(BIN)/activate
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py serve_many --processes $(PROCESSES) --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) db.sqlite3* test-db.sqlite3*
