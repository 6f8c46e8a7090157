# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Mermaid that mkdocs-material loads from a CDN (major 11), served locally to the browser check.
MERMAID_VERSION := 11.17.2
MERMAID := .cache/mermaid-$(MERMAID_VERSION)/mermaid.min.js
export KERAS_BACKEND := torch
export PYTHONDONTWRITEBYTECODE := 1
export MLFLOW_TRACKING_URI ?=
export WANDB_MODE := offline
export WANDB_SILENT := true
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo test lint format bench bench-smoke docs docs-check wheel-check clean

install: $(STAMP)

# Every install path goes through constraints.txt, which pins torch==2.13.0 (CPU).
$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/digits/train.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The suite runs the docstring examples of the package too (pyproject.toml: --doctest-modules).
test: lint
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory wheel-check
	$(MAKE) --no-print-directory docs-check

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	@if [ -f benchmarks/run.py ]; then $(BIN)/python -m benchmarks.run --smoke; fi

# The site, strict (a warning fails the build), then its links, anchors and rendering checked in the HTML.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python tools/check_site.py site

# `make docs`, then every page rendered in headless Chromium (Debian: apt-get install chromium): articles
# render, Mermaid diagrams are drawn. Without Chromium or npm it says so and stops there, except in CI
# (CI=true), where .ci/run installs Chromium and a missing browser fails.
docs-check: docs
	@if command -v chromium >/dev/null 2>&1 && { [ -f $(MERMAID) ] || command -v npm >/dev/null 2>&1; }; then \
		$(MAKE) --no-print-directory $(MERMAID) && \
		$(BIN)/python tools/check_site.py site --browser --mermaid $(MERMAID) $(if $(SCREENSHOTS),--screenshots $(SCREENSHOTS)); \
	elif [ "$$CI" = "true" ]; then \
		echo "docs-check: CI needs chromium and npm for the browser check" >&2; exit 1; \
	else \
		echo "docs-check: browser check skipped: install chromium (apt-get install chromium) and npm"; \
	fi

$(MERMAID):
	mkdir -p $(dir $(MERMAID))
	cd $(dir $(MERMAID)) && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null \
		&& tar xzf mermaid-$(MERMAID_VERSION).tgz package/dist/mermaid.min.js \
		&& mv package/dist/mermaid.min.js . && rm -rf package mermaid-$(MERMAID_VERSION).tgz

# A wheel built from the repo, installed in a fresh venv (reusing the installed dependencies), runs the quickstart.
wheel-check: $(STAMP)
	$(BIN)/python tools/wheel_check.py

clean:
	rm -rf $(VENV) site .cache .pytest_cache .ruff_cache build runs mlruns mlflow.db lightning_logs
