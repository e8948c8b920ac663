# alarmbot — `make run` to try it, `make test` to check it. Everything installs itself.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
PYTHON310 := $(shell scripts/find-python310.sh 2>/dev/null)

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export ALARMBOT_VAR_DIR ?= $(CURDIR)/var
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.PHONY: help install model migrate run test lint format bench lock system-packages clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@if [ -z "$(PYTHON310)" ]; then scripts/find-python310.sh; exit 1; fi
	@echo ">> creating $(VENV) with $(PYTHON310)"
	@[ -x $(BIN)/python ] || $(PYTHON310) -m venv $(VENV)
	$(BIN)/pip install -q -U "pip<25" setuptools wheel 2>&1 | { grep -v '^WARNING: Location' || true; }
	@echo ">> installing pinned dependencies (first time ~90 s, ~2.7 GB)"
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $@

install: $(STAMP)  ## create .venv and install pinned dependencies

model: install  ## train the Rasa model if data/, config.yml, domain.yml or nlu/ changed
	$(BIN)/alarmbot train

migrate: install  ## apply database migrations
	$(BIN)/alarmbot db upgrade

run: model migrate  ## serve the H5 chat page, console and API on 127.0.0.1:8080
	$(BIN)/alarmbot run

system-packages:  ## Debian packages the tests drive (chromium, postgresql, redis-server)
	scripts/ensure-system-packages.sh

test: model system-packages  ## lint, validate training data and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/rasa data validate --fail-on-warnings -d domain.yml -c config.yml --data data/nlu data/rules.yml
	ALARMBOT_TEST_POSTGRES_URL="$${ALARMBOT_TEST_POSTGRES_URL:-$$(scripts/ensure-postgres.sh || true)}" \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: model  ## latency/throughput/RSS: alarmbot vs stock `rasa run` + `rasa run actions`
	$(BIN)/python bench/chat_latency.py

lock: install  ## re-pin constraints.txt from the current .venv
	{ echo "# Pinned versions of every package in .venv (pip freeze of a working install)."; \
	  echo "# Regenerate with: make lock"; \
	  $(BIN)/pip freeze --exclude-editable; } > constraints.txt

clean:  ## remove trained models and local data (keeps .venv)
	rm -rf models var .pytest_cache
