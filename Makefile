# Hatchway: two commands on a fresh machine.
#   make demo        start the local dev stack + Airflow, run the lifecycles, print what was made
#   make demo KEEP=1 the same, and keep the UI up until Ctrl-C
#   make test        unit, integration and end-to-end tests (incl. the Postgres + Celery leg)
#   make bench       benchmarks (tests/bench), printed as ratios
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
KEEP ?= 0

.PHONY: venv test demo bench lock system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --python $(BIN)/python -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Redis for the Celery leg; PostgreSQL 15 server binaries ship with the machine.
system-deps:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

test: venv system-deps
	$(BIN)/python -m pytest tests -m "not bench" $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m hatchway.devstack.demo $(if $(filter 1,$(KEEP)),--keep,)

bench: venv
	$(BIN)/python -m pytest tests/bench -m bench -s $(PYTEST_ARGS)

# Re-resolve the pinned locks after editing requirements*.in.
lock: venv
	$(BIN)/uv pip compile --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile --python-version 3.11 requirements.in -c requirements-dev.txt -o requirements.txt

clean:
	rm -rf $(VENV) .hatchway-dev .airflow-test .pytest_cache
