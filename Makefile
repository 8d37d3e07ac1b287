# stockpipe: one command to set up, one to run the pipeline, one to test it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE ?= $(HOME)/.cache/stockpipe
UV_VERSION := 0.13.8
UV_HOME := $(CACHE)/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_CACHE_DIR := $(CACHE)/uv
export STOCKPIPE_CACHE_DIR := $(CACHE)
PYTEST_ARGS ?=
# Two pytest-xdist workers: most tests wait on services, so two overlap well on two cores. A module's tests
# stay on one worker, and the tests of what a machine has once (the node, the Docker engine) share one
# (tests/conftest.py schedules them). TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS)

.PHONY: help setup prereqs demo test e2e test-images test-unit test-integration lint fmt bench chaos services-up services-down services-status cluster-up cluster-down clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Re-syncs only when the lock or the project metadata changed.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

prereqs:  ## check/install the system tools: Java 17, Maven, Go, kcat
	@bash .ci/prereqs.sh

setup: prereqs $(VENV)/.synced  ## install pinned Python deps into .venv; fetch/build Kafka, MinIO, helm, kubeconform once
	@$(BIN)/stockpipe services prefetch

demo: setup  ## run the pipeline end to end on one machine (local Kafka, MinIO, DuckDB; no credentials)
	$(BIN)/stockpipe demo

test: setup test-images  ## every test but the in-cluster acceptance ones: unit, integration, chart, control plane, images
	$(BIN)/pytest $(PYTEST_PARALLEL) -m "not e2e" $(PYTEST_ARGS)

# The in-cluster acceptance tests on a real node (as root): the chart's pods, the node itself. They need the
# node's binaries (built here once, cached) and the images; one worker, since a machine has one node.
# A skip fails here as in CI: this target exists to prove. Writes .bench/e2e.json.
e2e: setup test-images  ## the in-cluster acceptance tests on a real node, written to .bench/e2e.json
	$(BIN)/stockpipe services prefetch --with-node
	STOCKPIPE_REQUIRE_SUITES=1 $(BIN)/pytest -m e2e -n 0 --e2e-report .bench/e2e.json $(PYTEST_ARGS)

# The four images, built (or found current in the engine's layer cache) before the tests, so a cold
# build runs under no test's timeout. Where no engine can run (not root, no dockerd) it says so.
test-images: setup
	$(BIN)/python -m stockpipe_dev.localservices.imagebuild --if-engine --stop-engine

test-unit: setup
	$(BIN)/pytest -m unit $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-integration: setup
	$(BIN)/pytest -m "integration and not e2e" $(PYTEST_PARALLEL) $(PYTEST_ARGS)

lint: $(VENV)/.synced  ## ruff, mypy (strict on jobs/), sqlfluff on dbt/, yamllint
	$(BIN)/ruff check jobs tests dags
	$(BIN)/ruff format --check jobs tests dags
	$(BIN)/mypy
	$(BIN)/lint-imports
	@if compgen -G "dbt/models/**/*.sql" >/dev/null || compgen -G "dbt/models/*/*.sql" >/dev/null; then \
		$(BIN)/sqlfluff lint dbt --processes 2; else echo "sqlfluff: no dbt models yet"; fi
	$(BIN)/yamllint -s .

fmt: $(VENV)/.synced  ## format the Python code
	$(BIN)/ruff format jobs tests dags
	$(BIN)/ruff check --fix jobs tests dags

bench: setup  ## benchmarks, written to .bench/*.json
	$(BIN)/stockpipe bench all --out .bench

chaos: setup  ## fault scenarios for exactly-once, written to .bench/chaos.json
	$(BIN)/stockpipe bench chaos --out .bench

services-up: setup  ## start local Kafka, MinIO and the Finnhub/Slack stand-ins in the background
	$(BIN)/stockpipe services up
	$(BIN)/stockpipe services status

services-down:  ## stop them
	$(BIN)/stockpipe services down

services-status:
	$(BIN)/stockpipe services status

.PHONY: images
images: setup  ## build the four images (stockpipe, stockpipe-jobs, stockpipe-airflow, stockpipe-dashboard :dev) with the local Docker engine
	$(BIN)/python -m stockpipe_dev.localservices.imagebuild

cluster-up: setup  ## a local Kubernetes control plane on loopback (CLUSTER_ARGS=--with-node adds a node, as root)
	$(BIN)/stockpipe cluster up $(CLUSTER_ARGS)
	$(BIN)/stockpipe cluster status

cluster-down:  ## stop it (by pid) and remove its data
	$(BIN)/stockpipe cluster down

clean:  ## remove the venv and local state (the download cache stays)
	-$(BIN)/stockpipe services down
	rm -rf $(VENV) .lake .warehouse .bench .pytest_cache .mypy_cache .ruff_cache
