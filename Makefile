# fleetwatch — every target installs what it needs into .venv at the repo root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration bench clean serve

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

## demo: three real supervisord instances on loopback and the hub on them
demo: $(STAMP)
	$(BIN)/fleetwatch demo

## test: lint, format check, strict type check, then every test
test: lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

bench: $(STAMP)
	$(BIN)/python bench/hub.py
	$(BIN)/python bench/poll.py
	$(BIN)/python bench/reconnect.py
	$(BIN)/python bench/icecream.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist
