# Flywheel developer entry points. `make` alone lists them.
#
# Everything runs from the uv-managed .venv; `make install` creates it and installs
# what the local stack needs (redis-server, prometheus, Kafka jars) when missing.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# uv from PATH, else the one `make install` put into python3's site-packages
# (pip's script dir is not always on PATH, e.g. under pyenv shims).
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
BIN := .venv/bin
FLYWHEEL := $(BIN)/flywheel
PYTEST := $(BIN)/pytest
PYTEST_ARGS ?=
BENCH ?= bench/stack_startup.py

.PHONY: help install install-uv install-system install-python kafka-jars up down status \
	format lint typecheck test test-stack test-unit test-integration bench docs demo

# Prerequisites are ordered steps (install before lint before tests), not independent jobs.
.NOTPARALLEL:

help: ## Show this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: install-uv install-python install-system kafka-jars ## Set up everything: uv, .venv, redis-server, prometheus, Kafka jars

install-uv: ## Install uv if it is missing
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --break-system-packages uv

install-python: install-uv ## Create .venv from uv.lock (all members + dev group)
	$(UV) sync --all-packages --group dev --locked

install-system: ## apt-get install redis-server, prometheus, java, maven if missing
	@bash deploy/local/install-system-deps.sh

kafka-jars: install-python ## Fetch the Kafka broker jars from Maven Central (cached)
	$(FLYWHEEL) stack jars

up: ## Start Kafka, Redis and every service as local processes
	$(FLYWHEEL) stack up

down: ## Stop what `make up` started (by pid)
	$(FLYWHEEL) stack down

status: ## Each component's pid, port and health
	$(FLYWHEEL) stack status

format: ## Rewrite code with ruff (format + safe fixes)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: ## ruff check + ruff format --check (changes nothing)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: ## mypy --strict over the library, services and CLI
	$(BIN)/mypy

# Cheap checks first; make stops at the first failure (the order is left to right).
test: install lint typecheck test-stack ## Everything CI checks: install, lint, typecheck, unit + integration tests

# Uses a healthy stack if one answers (yours, or KAFKA_BOOTSTRAP_SERVERS/REDIS_URL);
# otherwise starts one and stops it again on the way out, whatever the outcome.
test-stack: ## Unit + integration tests, starting the stack for them if none answers
	@started=0; \
	trap 'if [[ $$started == 1 ]]; then echo "make test: stopping the stack it started"; $(FLYWHEEL) stack down; fi' EXIT; \
	if ! $(FLYWHEEL) stack status >/dev/null 2>&1; then \
		echo "make test: no healthy stack answers; starting one"; \
		started=1; \
		$(FLYWHEEL) stack up; \
	fi; \
	( eval "$$($(FLYWHEEL) stack env)"; exec $(PYTEST) $(PYTEST_ARGS) tests )

test-unit: ## Unit tests only (no network)
	$(PYTEST) $(PYTEST_ARGS) tests/unit

test-integration: ## Integration tests against the running stack (`make up` first)
	( eval "$$($(FLYWHEEL) stack env)"; exec $(PYTEST) $(PYTEST_ARGS) tests/integration )

docs: ## Regenerate README's generated sections and docs/schemas/ from the code
	$(BIN)/python -m tools.docgen

bench: ## Stack start-up benchmark (BENCH=bench/<file>.py for another)
	$(BIN)/python $(BENCH)

# Uses Kafka and Redis if they answer (else starts them and stops them after); runs its
# own services in a private namespace (docs/demo.md). DEMO_ARGS=--duration 60, --plain.
DEMO_ARGS ?=
demo: install ## Three simulated services, a concept drift, live view, alerts, PNG chart (< 3 min)
	$(BIN)/flywheel-demo $(DEMO_ARGS)

# Docker Compose stack (docs/docker-compose.md); needs a Docker engine, unlike `up`.
COMPOSE := docker compose -p flywheel -f deploy/docker-compose.yml
.PHONY: compose-up compose-down

compose-up: ## Build and start Kafka, Redis, Prometheus, Grafana and the services in Docker
	$(COMPOSE) up -d --build

compose-down: ## Stop and remove the Docker Compose stack (volumes are kept)
	$(COMPOSE) down
