# Sellerdesk: `make run` starts the portal and the ingest worker; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(PY) -m flask --app wsgi
PYTEST_ARGS ?=

.PHONY: run serve test test-sqlite test-postgres lint format bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## Portal on 127.0.0.1:$$PORT (default 5000) plus the ingest worker; Ctrl-C stops both.
run: $(VENV)/.installed
	$(FLASK) db upgrade
	$(FLASK) users bootstrap-admin
	$(FLASK) run-all

## Production: migrations, then gunicorn ($$WEB_CONCURRENCY workers, default 2) on
## $$HOST:$$PORT (default 127.0.0.1:5000) plus the ingest worker; Ctrl-C or SIGTERM stops both.
serve: $(VENV)/.installed
	$(PY) scripts/serve

## The whole suite on SQLite, then again on a PostgreSQL the suite starts itself.
test: $(VENV)/.dev-installed
	scripts/ensure-test-deps
	$(MAKE) --no-print-directory test-sqlite test-postgres lint

test-sqlite: $(VENV)/.dev-installed
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres: $(VENV)/.dev-installed
	$(PY) -m pytest --postgres $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Ingest benchmark (bench/README.md): N=5000 mails through a Dovecot it starts, against
## a plain IMAP fetch. E.g. make bench BENCH_ARGS='--sizes 1000,5000' (or '--postgres').
BENCH_ARGS ?=
bench: $(VENV)/.dev-installed
	$(PY) bench/ingest.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
