# Conveyor. `make run` starts everything; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# The browser tests (tests/browser) drive this Chromium through Playwright; never a download.
CHROMIUM ?= /usr/bin/chromium
# The Procfile names plain commands (python, celery): find them in the venv.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test browser pgbouncer netns fuzz lint format migrate install services bench bench-instructions soak clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Stops at once, naming Postgres or Redis and the command that starts it.
services: install
	@$(BIN)/python -m scripts.preflight --create-db

migrate: services
	$(BIN)/alembic upgrade head

run: migrate
	@mkdir -p var
	$(BIN)/honcho start --procfile Procfile --port $(PORT) web worker_ai worker maintenance beat flower

# The suite's tests mostly wait on real processes: two pytest workers (pytest-xdist), each
# with its own database, Redis db and servers, keep a full run near ten minutes. A file's
# tests stay on one worker, so module-scoped stacks start once. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: install browser pgbouncer netns
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# Debian's chromium for the browser tests: installed with apt when run as root, else stops
# saying how (the tests never skip for want of it).
browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq chromium; fi
	@test -x $(CHROMIUM) || { echo "error: the browser tests need Chromium at $(CHROMIUM). Install it with"; \
	  echo "  sudo apt-get install -y chromium   (Debian, Ubuntu)"; \
	  echo "and run make test again, or name another one: make test CHROMIUM=/path/to/chromium"; exit 1; }

# Debian's pgbouncer for the tests that run Conveyor behind it (tests/fakes/pgbouncer.py):
# installed with apt when run as root, else stops saying how (never skipped).
pgbouncer:
	@if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ] && [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq pgbouncer; fi
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || { \
	  echo "error: the PgBouncer tests need pgbouncer. Install it with"; \
	  echo "  sudo apt-get install -y pgbouncer   (Debian, Ubuntu)"; exit 1; }

# iproute2's `ip netns` for the test that runs web and workers as separate hosts
# (tests/e2e/test_across_hosts.py): it needs root, and fails (never skips) without.
netns:
	@if ! command -v ip >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq iproute2; fi
	@command -v ip >/dev/null && [ "$$(id -u)" = 0 ] || { \
	  echo "error: tests/e2e/test_across_hosts.py needs root and iproute2 (ip netns):"; \
	  echo "  sudo apt-get install -y iproute2, and run the suite as root"; exit 1; }

# Schemathesis over the OpenAPI spec, longer than `make test` runs it: FUZZ_EXAMPLES
# requests per operation, fresh seeds each run, every phase.
FUZZ_EXAMPLES ?= 200
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/api/test_openapi_fuzz.py --timeout 0

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Not part of `make test`. BENCH_ARGS: e.g. --quick, --only submit,poll, --max-load 1.5, --profile DIR
bench: install
	@test -f bench/run.py || { echo "bench/run.py does not exist yet"; exit 1; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Instructions per request and per job under valgrind: repeatable on a noisy machine.
# BENCH_ARGS: e.g. poll 304 --count 100
bench-instructions: install
	$(BIN)/python -m bench.instructions $(BENCH_ARGS)

# Not part of `make test` (which runs a short one): the whole stack under load while
# workers, Redis, Postgres, web workers and the provider fail, then an audit. Needs
# redis-server and Postgres's initdb/pg_ctl (SOAK_PG_BIN); writes var/soak/result.json.
SOAK_MINUTES ?= 10
SOAK_ARGS ?=
soak: install
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m soak.run $(SOAK_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
