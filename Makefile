# fleetwatch — every target installs what it needs into .venv at the repo root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration e2e bench clean serve web web-test mvcli

# The web app: npm packages from frontend/package-lock.json, built into the package.
WEB := src/fleetwatch/web/static/index.html
NODE_DEPS := frontend/node_modules/.installed
WEB_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts frontend/tsconfig.json

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The real multivisor-cli (PyPI multivisor[cli], pinned) for the Multivisor API tests, in a
# venv of its own: its extra pulls maya, pendulum, gevent and requests, which fleetwatch
# does not depend on. tests/integration/test_multivisor_api.py finds it at .mvcli/bin.
MVCLI := .mvcli
MVCLI_STAMP := $(MVCLI)/.installed

$(MVCLI_STAMP): requirements-mvcli.lock
	test -x $(MVCLI)/bin/python || $(PYTHON) -m venv $(MVCLI)
	$(MVCLI)/bin/pip install --quiet --disable-pip-version-check -r requirements-mvcli.lock
	touch $(MVCLI_STAMP)

mvcli: $(MVCLI_STAMP)

# `npm install --no-save` from the lock, not `npm ci`: the registry here carries only this
# platform's builds of optional native packages (rollup's), which `npm ci` takes for a lock
# out of sync. Every version is still the lock's (and package.json pins them exactly).
$(NODE_DEPS): frontend/package.json frontend/package-lock.json
	cd frontend && npm install --no-save --no-audit --no-fund --loglevel=error
	touch $(NODE_DEPS)

$(WEB): $(NODE_DEPS) $(WEB_SOURCES)
	cd frontend && npm run --silent build

web: $(WEB)

## demo: real supervisord instances (and an icecream cluster as root) watched by the hub
## (`make demo LISTEN=HOST:PORT` to listen elsewhere than 127.0.0.1:22000)
demo: $(STAMP) $(WEB)
	$(BIN)/fleetwatch demo $(if $(LISTEN),--listen '$(LISTEN)')

## test: lint, format check, strict type checks, the web app's unit tests, then every test
test: lint typecheck web-test $(WEB) $(MVCLI_STAMP)
	$(BIN)/pytest

web-test: $(NODE_DEPS)
	cd frontend && npx --no-install vue-tsc --noEmit && npx --no-install vitest run

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP) $(MVCLI_STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP) $(WEB)
	$(BIN)/pytest tests/e2e

bench: $(STAMP) $(WEB)
	$(BIN)/python bench/ui.py
	$(BIN)/python bench/hub.py
	$(BIN)/python bench/poll.py
	$(BIN)/python bench/reconnect.py
	$(BIN)/python bench/icecream.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/agent_latency.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/tui.py

clean:
	rm -rf $(VENV) $(MVCLI) .mypy_cache .pytest_cache .ruff_cache build dist frontend/node_modules src/fleetwatch/web/static
