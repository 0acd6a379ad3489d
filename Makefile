# Parley: `make run` starts the app, `make test` runs the test suite. Both need only python3:
# the virtualenv is created on first use, and PostgreSQL and Redis come from Python wheels
# (see scripts/stack.py) unless DATABASE_URL / REDIS_URL point at servers of your own.

PYTHON ?= python3
VENV := .venv
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench-load bench-awareness bench-archive

help:
	@echo "make run     start Parley (PostgreSQL, Redis, uvicorn, Celery) on http://127.0.0.1:8000/"
	@echo "make test    run the test suite against throwaway PostgreSQL and Redis (PYTEST_ARGS=...)"
	@echo "make lint    ruff check and ruff format --check"
	@echo "make install create .venv and install requirements-dev.txt"
	@echo "make bench-load  the load benchmark (ARGS=\"--scenario chat --rate 2000\", ...); docs/performance.md"

install: $(VENV)/.installed

# Debian's python3 needs its python3-venv package for `python3 -m venv`: installed here when we are
# root, otherwise we print the command to run.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@if [ ! -x $(VENV)/bin/pip ]; then \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) || { \
			rm -rf $(VENV); \
			if [ "$$(id -u)" -ne 0 ]; then \
				echo "error: '$(PYTHON) -m venv' failed. On Debian run: sudo apt-get install -y python3-venv" >&2; \
				exit 1; \
			fi; \
			echo "installing Debian's python3-venv..." >&2; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
			$(PYTHON) -m venv $(VENV); \
		}; \
	fi
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py run

test: $(VENV)/.installed
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

ARGS ?=
BENCH_STACK ?= bench
bench-load: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py $(BENCH_STACK) -- $(VENV)/bin/python bench/load.py $(ARGS)

bench-awareness: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python bench/awareness.py

bench-archive: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python bench/archive.py
