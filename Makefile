# model-router — two commands set everything up on a fresh machine:
#   make run    install into .venv and start the gateway (demo upstreams when no backend is configured)
#   make test   install the dev tools and run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# `make run PORT=9000`, or ROUTER_HOST / ROUTER_PORT from the environment (as `model-router serve` reads them).
HOST   ?= $(or $(ROUTER_HOST),127.0.0.1)
PORT   ?= $(or $(ROUTER_PORT),8080)
export LITELLM_LOCAL_MODEL_COST_MAP := True
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-dev run demo test lint bench schema dashboards sync-chart clean soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Everything comes from the hashed lock files; the project itself is installed without deps.
$(VENV)/.installed: requirements.lock requirements-build.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-build.lock
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock $(VENV)/.installed
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-dev.lock
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/model-router serve --host $(HOST) --port $(PORT)

demo: install
	$(BIN)/model-router serve --demo --host $(HOST) --port $(PORT)

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check router classifiers tests benchmarks dashboards helm
	$(BIN)/mypy router

bench: install-dev
	$(BIN)/python benchmarks/bench_floor.py
	$(BIN)/python benchmarks/bench_gateway.py
	$(BIN)/python benchmarks/bench_classifier.py
	$(BIN)/python benchmarks/bench_decision.py
	$(BIN)/python benchmarks/bench_swarm.py
	$(BIN)/python benchmarks/bench_observability.py
	$(BIN)/python benchmarks/bench_claude.py
	$(BIN)/python benchmarks/bench_tenants.py

# Bounded load with injected faults and a slow-connection flood (loopback, ~30 s; not in CI).
soak: install-dev
	$(BIN)/python benchmarks/soak.py

# Regenerate the committed generated files (tests fail when they drift).
schema: install
	$(BIN)/python -m router.policy.schema
dashboards: install
	$(BIN)/python dashboards/generate.py
sync-chart: install-dev
	$(BIN)/python helm/sync_files.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
