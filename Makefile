# A newcomer's two commands are `make dev` and `make test`; both need only Python 3.11+.
# Servers the environment does not provide (DATABASE_URL / DATABASE_ADMIN_URL, REDIS_URL,
# AWS_S3_ENDPOINT_URL) are started by config.devstack and stopped when the command ends.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
SYNCED := $(VENV)/.synced
UV_VERSION := 0.13.8
TOOLS := .dev/tools
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never

.PHONY: help dev manage test lint compose-check browser-deps static ledger-sql prod-check

help:
	@echo "make dev            run the app with embedded PostgreSQL, Valkey and S3"
	@echo "make manage ARGS=.. a manage.py command against the running make dev (createsuperuser)"
	@echo "make test           run the test suite (PYTEST_ARGS='tests/ledger -x' to narrow it)"
	@echo "make lint           ruff check, ruff format --check and the import contracts (lint-imports)"
	@echo "make compose-check  validate docker-compose.yml against the Compose spec"
	@echo "make static         build static files as the Dockerfile does (hashed, compressed)"
	@echo "make ledger-sql     rewrite ledger/sql/current/ from a freshly migrated database"
	@echo "make prod-check     run gunicorn, worker and beat as production and walk a journey"

# Rebuilt only when uv.lock changes. uv comes from PATH, else from a small tools venv, else from
# `pip install --user` (for a Python without the venv module).
$(SYNCED): uv.lock
	@uv=$$(command -v uv || true); \
	if [ -z "$$uv" ] && [ -x $(TOOLS)/bin/uv ]; then uv=$(TOOLS)/bin/uv; fi; \
	if [ -z "$$uv" ]; then \
		echo "Installing uv $(UV_VERSION)"; \
		if python3 -m venv $(TOOLS) 2>/dev/null; then \
			$(TOOLS)/bin/python -m pip install -q uv==$(UV_VERSION) && uv=$(TOOLS)/bin/uv; \
		else \
			python3 -m pip install -q --user uv==$(UV_VERSION) \
			&& uv=$$(python3 -m site --user-base)/bin/uv; \
		fi; \
	fi; \
	[ -n "$$uv" ] || { echo "Could not install uv; see https://docs.astral.sh/uv/"; exit 1; }; \
	"$$uv" sync --frozen
	@touch $@

dev: $(SYNCED)
	$(PY) -m config.devstack -- $(PY) -m config.devrun

# A management command against the running `make dev`, from a second terminal.
manage: $(SYNCED)
	$(PY) -m config.devrun manage $(ARGS)

# Browser tests (and prod-check's screenshots) drive the Chromium at CHROMIUM_PATH; no wheel
# brings a browser. Debian's is installed once when this user may (root with apt-get); any other
# Chromium or Chrome works: CHROMIUM_PATH=/usr/bin/google-chrome make test.
CHROMIUM_PATH ?= /usr/bin/chromium
export CHROMIUM_PATH
browser-deps:
	@if [ ! -x "$(CHROMIUM_PATH)" ] && [ "$(CHROMIUM_PATH)" = /usr/bin/chromium ] \
		&& command -v apt-get >/dev/null && [ "$$(id -u)" -eq 0 ]; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

test: $(SYNCED) browser-deps
	DJANGO_ENV=test $(PY) -m config.devstack --test -- $(PY) -m pytest $(PYTEST_ARGS)

# The one static build: the Dockerfile runs the same script.
static: $(SYNCED)
	PYTHON=$(PY) deploy/build-static

# Production, run for real and walked over HTTP (tests/production): ARGS="--screenshots DIR".
prod-check: $(SYNCED)
	$(PY) -m config.devstack --test -- $(PY) -m tests.production $(ARGS)

lint: $(SYNCED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

compose-check: $(SYNCED)
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

# Today's definition of every ledger function, one file each, from a scratch database migrated
# on an embedded (or the configured) PostgreSQL; tests/ledger/test_current_sql.py checks them.
ledger-sql: $(SYNCED)
	DJANGO_ENV=test $(PY) -m config.devstack --test -- $(PY) manage.py ledger dump_sql
