# Trading back office: one command to run it, one to test it.
#
#   make run    set up .venv, migrate, then run web + Celery worker + beat
#               in the foreground (embedded: SQLite, filesystem:// broker,
#               simulated broker); Ctrl-C stops all three and exits 0.
#               PORT=8000 default; the address goes to var/run-url.
#   make test   set up .venv with the dev requirements and run pytest
#               (PYTEST_ARGS="-k foo -x" passes arguments through).
#   make clean  remove runtime state under var/ (database, logs, queue);
#               keeps .venv.
#
# Recipes are silent (@) on purpose: make must never echo a line that could
# carry a credential. Nothing here expands a secret; keep it that way.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.stamp-requirements
DEV_STAMP := $(VENV)/.stamp-requirements-dev
PYTEST_ARGS ?=

# Never let a test tool fetch a browser of its own: tests use /usr/bin/chromium.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
export PUPPETEER_SKIP_DOWNLOAD := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: bench help run test clean venv deps dev-deps migrate check

help:
	@echo "make run     set up .venv and run web + worker + beat (PORT=$${PORT:-8000}); Ctrl-C stops all"
	@echo "make test    set up .venv (dev requirements) and run pytest (PYTEST_ARGS=...)"
	@echo "make migrate apply migrations and the periodic-task schedule"
	@echo "make check   Django system checks"
	@echo "make bench   run the benchmarks (ratios in one run; BENCH_ARGS=...)"
	@echo "make clean   remove runtime state under var/ (keeps .venv)"

# --- virtual environment ---------------------------------------------------

$(VPY):
	@echo "creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)

# Reinstall only when the requirements file is newer than its stamp.
$(RUN_STAMP): requirements.txt | $(VPY)
	@echo "installing requirements.txt into $(VENV)"
	@$(VPY) -m pip install -q -r requirements.txt
	@touch $@

# requirements-dev.txt includes requirements.txt (-r), so both are inputs.
$(DEV_STAMP): requirements-dev.txt requirements.txt | $(VPY)
	@echo "installing requirements-dev.txt into $(VENV)"
	@$(VPY) -m pip install -q -r requirements-dev.txt
	@touch $@ $(RUN_STAMP)

venv: $(VPY)
deps: $(RUN_STAMP)
dev-deps: $(DEV_STAMP)

# --- running ---------------------------------------------------------------

# scripts/run.sh migrates, runs setup_periodic_tasks and bootstrap_demo, then
# supervises runserver, the worker and beat (logs in var/log/).
# scripts/foreground.py gives it the terminal, so Ctrl-C reaches run.sh alone
# (not make, which would otherwise end with status 130): a clean stop exits 0.
run: $(RUN_STAMP)
	@$(VPY) scripts/foreground.py bash scripts/run.sh

# Like every manage.py command, these use the embedded default (backoffice/config.py)
# unless production settings are given.
migrate: $(RUN_STAMP)
	@$(VPY) manage.py migrate --noinput
	@$(VPY) manage.py setup_periodic_tasks

check: $(RUN_STAMP)
	@$(VPY) manage.py check

# --- tests -----------------------------------------------------------------

# pytest's exit code 5 means no test was collected: nothing ran, so fail.
test: $(DEV_STAMP)
	@bash scripts/ensure-chromium.sh
	@rc=0; $(VPY) -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); treating that as a failure" >&2; fi; \
	exit $$rc

# --- housekeeping ----------------------------------------------------------

# Benchmarks: ratios measured in one run (PostgreSQL at DATABASE_URL or 127.0.0.1:5432); see docs/benchmarks.md.
bench: $(DEV_STAMP)
	@$(VPY) -m bench $(BENCH_ARGS)

clean:
	@echo "removing var/ (database, logs, Celery queue, dev secret key) and caches; .venv is kept"
	@rm -rf var .pytest_cache celerybeat-schedule celerybeat-schedule.* celerybeat.pid
	@find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
