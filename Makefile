# numl: the two set-up commands are `make app` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5006

.PHONY: app test test-fast lint bench bench-gpu bench-quick screenshot

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.app-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.app-installed

## Serve the dashboard on built-in data at http://localhost:$(PORT)
app: $(VENV)/.app-installed
	$(VENV)/bin/numl app --port $(PORT)

## Install what the tests need (incl. Debian's chromium) and run the whole suite
test: $(VENV)/.test-installed
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(VENV)/bin/ruff format --check numl_core app tests benchmarks
	$(VENV)/bin/ruff check numl_core app tests benchmarks
	$(PY) -m pytest --nbmake tests numl_core notebooks

## The fast subset for development (no browser, notebooks or slow tests; under 3 minutes on 2 cores)
test-fast: $(VENV)/.test-installed
	$(VENV)/bin/ruff check numl_core app tests benchmarks
	$(PY) -m pytest -q -m "not slow and not browser and not notebook" tests numl_core

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff format numl_core app tests benchmarks
	$(VENV)/bin/ruff check --fix numl_core app tests benchmarks

## Run every benchmark at full size (QUICK=1 for smoke sizes; NAME=unfolding for one)
bench: $(VENV)/.test-installed
	$(PY) -m benchmarks.run_all $(if $(QUICK),--quick) $(NAME)

## The GPU figures of every workflow in one short run (benchmarks/results/gpu.json)
bench-gpu: $(VENV)/.test-installed
	$(PY) -m benchmarks.gpu $(if $(QUICK),--quick) $(NAME)
