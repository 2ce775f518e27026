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

.PHONY: env book test unit lint-js dist clean-book chromium

env: $(STAMP)

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml uv.lock | $(if $(filter $(BIN)/uv,$(UV)),$(BIN)/uv)
	$(UV) sync --frozen --all-extras  # the library, the book toolchain, the tests, CuPy
	touch $@

# MathJax is served by the book itself (the site makes no request to other hosts):
# npm installs the versions book/package-lock.json pins; the book's Sphinx extension
# (book/_ext/psanet_book.py) copies it into the built site. The touch keeps the
# stamp newer than the lock file, so a second `make book` needs no network.
MATHJAX := book/node_modules/mathjax/es5/tex-chtml.js

$(MATHJAX): book/package.json book/package-lock.json
	npm ci --prefix book --no-audit --no-fund
	touch $@

# ESLint (pinned in the same lock) checks the figures' JavaScript, shipped as package
# files in psanet_lite/viz/static/; book/eslint.config.mjs says what their closure provides.
ESLINT := book/node_modules/.bin/eslint

$(ESLINT): $(MATHJAX) ;

lint-js: $(ESLINT)
	$(ESLINT) --config book/eslint.config.mjs psanet_lite/viz/static psanet_lite/export

# Notebooks run at build time and are cached (book/_build/.jupyter_cache): a second
# build re-runs only changed notebooks. A failing cell or any Sphinx warning fails it.
# The runs the chapters train are trained ahead, beside the build (book/tools/train_ahead.py).
book: $(STAMP) $(MATHJAX)
	$(BIN)/python book/tools/train_ahead.py $(BIN)/jupyter-book build book --warningiserror --keep-going

# The browser test drives Debian's chromium (never a downloaded browser).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "The browser test needs /usr/bin/chromium: run 'sudo apt-get install -y chromium'" >&2; \
		exit 1; \
	fi

# The tests that need no built site.
unit: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -m "not browser and not site and not colab"

# Unit tests and the JavaScript linter, then the book (every notebook runs), then the
# built site (its files, and in a browser), then every chapter again in a simulated Colab
# runtime installed from the wheel (those that train, on the runs the book build cached).
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -m "not browser and not site and not colab"
	$(MAKE) lint-js
	$(MAKE) book
	$(MAKE) chromium
	$(BIN)/python -m pytest -q -m "browser or site"
	$(BIN)/python -m pytest -q -m colab

# The sdist and the wheel of the version in psanet_lite/__init__.py, into dist/.
dist: $(STAMP)
	rm -rf dist
	$(UV) build --out-dir dist

clean-book:  # the site, its notebook cache and the book's cached training runs
	rm -rf book/_build data/generated/book_runs
