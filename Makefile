# Parley: `make run` starts the app, `make test` runs the test suite. Both need only python3:
# the virtualenv is created on first use, and PostgreSQL and Redis come from Python wheels
# (see scripts/stack.py) unless DATABASE_URL / REDIS_URL point at servers of your own.

PYTHON ?= python3
VENV := .venv
PYTEST_ARGS ?=
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install lock check-lock run createsuperuser test test-faults lint bench-load bench-awareness bench-archive bench-board bench-sim bench-search bench-format

help:
	@echo "make run     start Parley (PostgreSQL, Redis, uvicorn, Celery) on http://127.0.0.1:8000/"
	@echo "make test    run the test suite against throwaway PostgreSQL and Redis (PYTEST_ARGS=...)"
	@echo "make test-faults  the fault suite (tests/faults, about 5 minutes); figures: docs/reliability.md"
	@echo "make lint    ruff check, ruff format --check and mypy (make test runs them first)"
	@echo "make createsuperuser  create an admin in make run's database, whether or not make run is running"
	@echo "make install create .venv and install requirements-dev.lock (every dependency pinned)"
	@echo "make lock    recompile requirements.lock and requirements-dev.lock after editing requirements*.txt"
	@echo "make bench-load  the load benchmark (ARGS=\"--scenario chat --rate 2000\", ...); docs/performance.md"
	@echo "make bench-sim   the simulator engine benchmark (no database; ARGS=\"--rate 10000 --seconds 60\"); docs/performance.md"
	@echo "make bench-board the boards benchmark (ARGS=\"--scenario editors\", ...); docs/performance.md"
	@echo "make bench-search search latency over 1,000,000 messages (ROWS=...); docs/performance.md"
	@echo "make bench-format the cost of rendering a message's formatting, against the rest of a send; docs/performance.md"

install: $(VENV)/.installed

# requirements.txt (runtime) and requirements-dev.txt (tests, tools) name what we use, pinned;
# requirements.lock and requirements-dev.lock, compiled from them by pip-tools (`make lock`), pin
# every transitive dependency too, so a new release of an indirect dependency changes nothing
# until the locks are recompiled. `make install` installs requirements-dev.lock (pip itself too).
$(VENV)/.installed: requirements.lock requirements-dev.lock requirements.txt requirements-dev.txt | $(VENV)/bin/pip
	@$(MAKE) --no-print-directory check-lock
	$(VENV)/bin/pip install -q "$$(grep -x 'pip==.*' requirements-dev.lock)"
	$(VENV)/bin/pip install -q -r requirements-dev.lock
	touch $@

# Debian's python3 needs its python3-venv package for `python3 -m venv`: installed here when we are
# root, otherwise we print the command to run.
$(VENV)/bin/pip:
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV) || { \
		rm -rf $(VENV); \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "error: '$(PYTHON) -m venv' failed. On Debian run: sudo apt-get install -y python3-venv" >&2; \
			exit 1; \
		fi; \
		echo "installing Debian's python3-venv..." >&2; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
		$(PYTHON) -m venv $(VENV); \
	}

# pip-compile's options for both locks. The runtime lock is constrained by the dev lock, so the
# two always agree on a version. Without --upgrade, pins that still fit are kept
# (`make lock LOCK_ARGS=--upgrade` moves every indirect dependency to its newest release).
LOCK_ARGS ?=
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
lock: | $(VENV)/bin/pip
	$(VENV)/bin/pip install -q "$$(grep -x 'pip-tools==.*' requirements-dev.txt)"
	$(PIP_COMPILE) --output-file requirements-dev.lock requirements-dev.txt
	$(PIP_COMPILE) --constraint requirements-dev.lock --output-file requirements.lock requirements.txt
	@$(MAKE) --no-print-directory check-lock

# Each version requirements*.txt pins must be the one its lock pins (pip-compile writes names in
# lower case with "-" for "_" and ".", and without extras).
PINS_OF = sed -nE 's/^([A-Za-z0-9_.-]+)(\[[^]]*\])?==([^ ;]+).*/\1 \3/p' $(1) \
	| awk '{ name = tolower($$1); gsub(/[_.]/, "-", name); print name "==" $$2 }'
check-lock:
	@for pair in requirements.txt:requirements.lock requirements.txt:requirements-dev.lock \
			requirements-dev.txt:requirements-dev.lock; do \
		source=$${pair%%:*}; lock=$${pair#*:}; \
		for pin in $$($(call PINS_OF,$$source)); do \
			grep -qx "$$pin" $$lock || { \
				echo "error: $$source pins $$pin but $$lock does not: run \`make lock\`" >&2; exit 1; }; \
		done; \
	done

run: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py run

# Uses the database of the running `make run`, or starts it (under .data/) for the command.
# ARGS="--username ana --email ana@example.com --noinput" with DJANGO_SUPERUSER_PASSWORD=...: no prompts.
createsuperuser: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py manage createsuperuser $(ARGS)

# The checks (`make lint`) run first: a ruff or mypy finding fails the run before any test does.
# The suite runs in TEST_WORKERS processes (pytest-xdist; each test module stays in one of them, and
# tests/plugin.py gives each its own database and Redis): 6 minutes instead of 10 on 2 cores.
# TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	@$(MAKE) --no-print-directory lint
	bash scripts/ensure_chromium.sh
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The fault suite (docs/reliability.md): real server processes, PostgreSQL and Redis behind fault
# proxies. `make test` runs only its quick part (pytest marker faults_quick). FAULTS_BURST=10000
# sizes the connection burst (default 1,000).
test-faults: $(VENV)/.installed
	PARLEY_FAULTS=full $(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python -m pytest tests/faults $(PYTEST_ARGS)

# ruff, then mypy with django-stubs ([tool.mypy] in pyproject.toml; incremental, cached in
# .mypy_cache). Importing the settings needs these variables; nothing is contacted.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=postgres://mypy@localhost/mypy REDIS_URL=redis://localhost PARLEY_TESTING=1 DB_POOL_MAX_SIZE=0 \
		$(VENV)/bin/mypy

BENCH_STACK ?= bench
bench-load: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py $(BENCH_STACK) -- $(VENV)/bin/python bench/load.py $(ARGS)

bench-awareness: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python bench/awareness.py

bench-archive: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python bench/archive.py

# The simulator engine alone (bench/sim.py): CPU time of a 60-second run of a 10-component design at
# 10,000 requests/s and request-events per second; pure Python + numpy, no PostgreSQL or Redis.
bench-sim: $(VENV)/.installed
	$(VENV)/bin/python bench/sim.py $(ARGS)

# Boards (bench/board.py): 50 editors on one board, 1,000 boards x 5 editors, compaction of a
# 100,000-update board, JSON export of 10,000 elements; PostgreSQL durable (BENCH_STACK=bench).
bench-board: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py $(BENCH_STACK) -- $(VENV)/bin/python bench/board.py $(ARGS)

# Search (bench/search.py): 1,000,000 messages bulk-loaded over 30 days and 1,000 rooms, then p50/p95
# of searches by a member of 20 rooms through search.selectors (PostgreSQL durable: BENCH_STACK=bench).
bench-search: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py $(BENCH_STACK) -- $(VENV)/bin/python bench/search.py

# Formatting (bench/formatting.py): per-message Markdown rendering + sanitising, against a send's
# whole cost in the same run (timeit).
bench-format: $(VENV)/.installed
	$(VENV)/bin/python scripts/stack.py test -- $(VENV)/bin/python bench/formatting.py
