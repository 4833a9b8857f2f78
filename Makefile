# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    create .venv, install the pinned requirements, migrate, serve on :8000
#   make test   the same set-up, then the whole test suite (and the engine's tests on Django 6.1)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-django6 lint bench bench-engines screenshot serve-many clean

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
	$(MAKE) --no-print-directory test-django6

# The package supports Django 5.2 (the pins above) and 6.1, which needs Python 3.12:
# the engine, middleware and consumer tests run again in a venv of their own on 6.1.
# pyenv's shim may name a python3.12 that does not run, so each candidate is tried.
DJANGO6 ?= 6.1.3
VENV6 := .venv-django6
ifndef PYTHON312
PYTHON312 := $(shell for p in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 \
	2>/dev/null | sort -rV) $$(command -v python3.12); do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && echo "$$p" && break; done)
endif
DJANGO6_TESTS ?= tests/sessions tests/http tests/realtime

# requirements.txt pins Django 5.2; everything else is installed as pinned.
$(VENV6)/bin/activate: requirements.txt
	$(PYTHON312) -m venv $(VENV6)
	$(VENV6)/bin/pip install --quiet --upgrade pip
	grep -iv '^django==' requirements.txt > $(VENV6)/requirements.txt
	$(VENV6)/bin/pip install --quiet -r $(VENV6)/requirements.txt "Django==$(DJANGO6)"
	touch $(VENV6)/bin/activate

test-django6:
ifeq ($(PYTHON312),)
	@echo "test-django6: no Python 3.12 found (pyenv or PATH; or set PYTHON312=...), so Django $(DJANGO6) is not tested"
	@if [ -n "$$LIVE_REQUIRE_ALL" ]; then echo "test-django6: required (LIVE_REQUIRE_ALL=1)"; exit 1; fi
else
	$(MAKE) --no-print-directory $(VENV6)/bin/activate
	$(VENV6)/bin/python -m pytest $(DJANGO6_TESTS) $(DJANGO6_ARGS)
endif

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
	rm -rf $(VENV) $(VENV6) db.sqlite3* test-db.sqlite3*
