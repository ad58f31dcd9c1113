# Hatchway: two commands on a fresh machine.
#   make demo        start the local dev stack + Airflow, run the lifecycles, print what was made
#   make demo KEEP=1 the same, and keep the UI up until Ctrl-C
#   make test        unit, integration and end-to-end tests (incl. the Postgres + Celery leg)
#   make bench       benchmarks (tests/bench), printed as ratios
#   make chaos       only the 50 job runs + 20 WES runs with Seqera failing 20% of its calls (in make test too)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
KEEP ?= 0
# Test processes (pytest-xdist): each has its own moto, simulators and Airflow home. worksteal:
# a worker that runs out takes queued tests from the other (with `load`, one worker idled for
# minutes at the end while the other worked through the long tests it had been given at the start).
TEST_WORKERS ?= 2

.PHONY: venv test demo bench chaos lock system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --python $(BIN)/python -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests use: Redis for the Celery leg, docker-compose to validate the
# compose file (its `config` needs no engine), chromium for the UI tests (Playwright drives it;
# it cannot download a browser here). PostgreSQL 15's server binaries ship with the machine.
SYSTEM_PACKAGES := redis-server:redis-server docker-compose:docker-compose chromium:chromium
system-deps:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do command -v $${p%%:*} >/dev/null || echo $${p##*:}; done)"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi

test: venv system-deps
	$(BIN)/python -m pytest tests -m "not bench" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m hatchway_dev.demo $(if $(filter 1,$(KEEP)),--keep,)

bench: venv
	$(BIN)/python -m pytest tests/bench -m bench -s $(PYTEST_ARGS)

chaos: venv
	$(BIN)/python -m pytest tests/integration/test_chaos_at_scale.py -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Re-resolve the pinned locks after editing requirements*.in.
lock: venv
	$(BIN)/uv pip compile --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile --python-version 3.11 requirements.in -c requirements-dev.txt -o requirements.txt

clean:
	rm -rf $(VENV) .hatchway-dev .airflow-test .pytest_cache
