# Two entry points: `make demo` (set up and enrich the example alerts) and
# `make test` (lint, type-check and run the test suite). Both create the
# virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo keeps its feeds, cache and budgets apart from a real installation.
DEMO_DATA_DIR ?= $(CURDIR)/var/demo
IOCSCOPE := IOCSCOPE_DATA_DIR=$(DEMO_DATA_DIR) $(BIN)/iocscope

.PHONY: all venv demo test lint typecheck unit bench clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	@scripts/demo-feeds.sh "$(BIN)/iocscope" "$(DEMO_DATA_DIR)"
	$(IOCSCOPE) alerts examples/alerts.jsonl

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q

test: lint typecheck unit

bench: venv
	$(BIN)/python bench/feed_index.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
