# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PATHS := examples/slos

.PHONY: demo test setup system-packages lint typecheck unit clean schema

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when the project's dependency declaration or pins change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# promtool, a Prometheus server, amtool and a PostgreSQL server, from Debian (tests run them as real parts).
system-packages:
	tools/install-system-packages.sh

demo: setup system-packages
	$(BIN)/sloplane validate $(PATHS)
	$(BIN)/sloplane explain $(PATHS)
	$(BIN)/sloplane render $(PATHS) --out out
	$(BIN)/sloplane preview .
	$(BIN)/python -m sloplane.cli.demo $(PATHS) --reports out/reports
	$(BIN)/python -m tests.datadog_demo $(PATHS)

lint: setup
	$(BIN)/ruff check sloplane tests bench examples provider
	$(BIN)/ruff format --check sloplane tests bench examples provider

typecheck: setup
	$(BIN)/mypy sloplane
	$(BIN)/lint-imports

# Two workers: the machine has two cores and most test time is spent waiting on real processes.
# Tests that share files or ports take them per test (tmp_path, free ports), never per run.
unit: setup system-packages
	$(BIN)/pytest -q -n 2 --dist loadfile

test: lint typecheck unit

# The component package's schema, checked in (tests/test_provider_schema.py fails when it drifts).
schema: setup
	$(BIN)/python -m sloplane.provider.schema_file provider/schema.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
