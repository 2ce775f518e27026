# One-command setup: `make book` builds the site, `make test` runs every test.
# Both create the environment on first use (uv, bootstrapped into .venv when
# the machine has none) and reuse it afterwards.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo $(BIN)/uv)
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Notebooks and tests run on the CPU threads the machine has; keep BLAS from oversubscribing.
export OMP_NUM_THREADS ?= 2

.PHONY: env book test unit kernels clean-book

env: $(STAMP)

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml uv.lock | $(if $(filter $(BIN)/uv,$(UV)),$(BIN)/uv)
	$(UV) sync --frozen --extra dev --extra cuda
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build book --warningiserror --keep-going

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(MAKE) book

clean-book:
	rm -rf book/_build
