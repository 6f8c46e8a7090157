# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KERAS_BACKEND := torch
export PYTHONDONTWRITEBYTECODE := 1
export MLFLOW_TRACKING_URI ?=
export WANDB_MODE := offline
export WANDB_SILENT := true
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo test lint format bench bench-smoke docs clean

install: $(STAMP)

# Every install path goes through constraints.txt, which pins torch==2.13.0 (CPU).
$(STAMP): pyproject.toml constraints.txt
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

test: lint
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory docs

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	@if [ -f benchmarks/run.py ]; then $(BIN)/python -m benchmarks.run --smoke; fi

docs: $(STAMP)
	@if [ -f mkdocs.yml ]; then $(BIN)/mkdocs build --strict --quiet --site-dir site; fi

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache runs mlruns mlflow.db lightning_logs
