# Conveyor. `make run` starts everything; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
# The Procfile names plain commands (python, celery): find them in the venv.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test lint format migrate install services bench bench-instructions clean

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
	$(BIN)/honcho start --procfile Procfile --port $(PORT) web worker_ai worker beat flower

test: install
	$(BIN)/pytest

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

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
