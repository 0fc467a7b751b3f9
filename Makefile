# crmkit: two commands on a fresh machine.
#   make demo   builds a sample CRM book in ./crm.db (SQLite) and prints it
#   make test   lint, format check, mypy --strict, import contracts, docs, tests
# Both bootstrap ./.venv with plain `python3 -m venv` + pip and reuse it while
# pyproject.toml is unchanged.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck contracts docs pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crmkit demo

test: lint typecheck contracts docs pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir .site

# one worker per core; a file's tests stay on one worker, so its module
# fixtures (the 100,000-interaction agenda book) are built once
pytest: $(STAMP)
	$(BIN)/pytest -n auto --dist loadfile --durations=15 --cov --cov-report=term-missing:skip-covered

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .site .pytest_cache .mypy_cache .ruff_cache .coverage crm.db crm.db-wal crm.db-shm
