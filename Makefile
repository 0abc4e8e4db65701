# Every target creates or refreshes .venv itself, so a fresh clone needs nothing but python3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.argus-installed

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## make demo: the main job on embedded defaults (SQLite, local object store, ephemeral Prefect)
demo: $(STAMP)
	$(VENV)/bin/argus demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## make test: lint, types, then the whole test suite (slow and integration tests included)
test: lint
	bash infra/start-postgres.sh
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .argus .pytest_cache .mypy_cache .ruff_cache
