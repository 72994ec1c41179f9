# Sellerdesk: `make run` starts the portal and the ingest worker; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(PY) -m flask --app wsgi
PYTEST_ARGS ?=

.PHONY: run serve bytecode test test-sqlite test-postgres verify verify-docs lint format bench clean

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
serve: $(VENV)/.installed bytecode
	$(PY) scripts/serve

## Compile the app's modules to bytecode, after installing or updating it: the systemd
## units cannot write to the checkout, and without it every process (each `ingest poll`,
## each parse worker) compiles the whole app again as it starts.
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q portal ingest wsgi.py

## The whole suite on SQLite, then again on a PostgreSQL the suite starts itself.
test: $(VENV)/.dev-installed
	scripts/ensure-test-deps
	$(MAKE) --no-print-directory test-sqlite test-postgres lint

test-sqlite: $(VENV)/.dev-installed
	$(PY) -m pytest $(PYTEST_ARGS)

test-postgres: $(VENV)/.dev-installed
	$(PY) -m pytest --postgres $(PYTEST_ARGS)

## The long security rounds (tests marked `slow`: 50 SIGKILL rounds over 2,000 messages,
## full-size pathological mail, the whole XSS corpus in Chromium, big fuzz runs) plus the
## route matrix and CSRF suites for their figures, on SQLite and then on PostgreSQL; under
## 30 minutes on 2 cores. Figures: $(VERIFY_FIGURES) (README "What we test").
VERIFY_FIGURES ?= instance/verify-figures.jsonl
VERIFY_SUITES := tests/security/test_route_matrix.py tests/security/test_csrf_all_posts.py
verify: $(VENV)/.dev-installed
	scripts/ensure-test-deps
	mkdir -p $(dir $(VERIFY_FIGURES)) && rm -f $(VERIFY_FIGURES)
	@start=$$(date +%s); \
	for db in "" --postgres; do \
		SECURITY_FIGURES=$(VERIFY_FIGURES) $(PY) -m pytest -q -m slow tests/security $$db $(PYTEST_ARGS) \
		&& SECURITY_FIGURES=$(VERIFY_FIGURES) $(PY) -m pytest -q $(VERIFY_SUITES) $$db $(PYTEST_ARGS) \
		|| exit 1; \
	done; \
	seconds=$$(( $$(date +%s) - start )); \
	echo "{\"verify_seconds\": $$seconds, \"commit\": \"$$(git rev-parse --short HEAD 2>/dev/null)\", \"date\": \"$$(date -u +%F)\"}" >> $(VERIFY_FIGURES); \
	echo "verify: passed on SQLite and PostgreSQL in $$(( seconds / 60 )) min $$(( seconds % 60 )) s"; \
	$(PY) scripts/verify_report.py $(VERIFY_FIGURES)

## Rewrite the figures table in docs/testing.md from the last `make verify` run.
verify-docs: $(VENV)/.dev-installed
	$(PY) scripts/verify_report.py $(VERIFY_FIGURES) --write docs/testing.md

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Ingest benchmark (bench/README.md): `flask ingest poll` over N=5000 real-world mails in a
## Dovecot it starts, on SQLite and PostgreSQL, against a plain IMAP fetch.
## E.g. make bench BENCH_ARGS='--sizes 1000,5000' (or '--databases sqlite', '--corpus amazon').
BENCH_ARGS ?=
bench: $(VENV)/.dev-installed
	$(PY) bench/ingest.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
