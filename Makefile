# numl: the two set-up commands are `make app` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5006
DOCS_PORT ?= 8000
# the docs' build: warnings are errors (mkdocs.yml sets strict); the env variables hide two plugins' banners
MKDOCS := DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs

.PHONY: app test test-fast lint docs docs-serve bench bench-gpu bench-quick screenshot

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.app-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.app-installed $(VENV)/.docs-installed

$(VENV)/.docs-installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

## Serve the dashboard on built-in data at http://localhost:$(PORT)
app: $(VENV)/.app-installed
	$(VENV)/bin/numl app --port $(PORT)

## Install what the tests need (incl. Debian's chromium) and run the whole suite
test: $(VENV)/.test-installed
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends chromium)
	$(VENV)/bin/ruff format --check numl_core app tests benchmarks
	$(VENV)/bin/ruff check numl_core app tests benchmarks
	$(MKDOCS) build --strict --quiet --site-dir build/site
	$(PY) -m pytest --nbmake tests numl_core notebooks

## The fast subset for development (no browser, notebooks or slow tests; under 3 minutes on 2 cores)
test-fast: $(VENV)/.test-installed
	$(VENV)/bin/ruff check numl_core app tests benchmarks
	$(PY) -m pytest -q -m "not slow and not browser and not notebook" tests numl_core

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff format numl_core app tests benchmarks
	$(VENV)/bin/ruff check --fix numl_core app tests benchmarks

## Build the documentation (docs/, with the API reference from the docstrings) into build/site
docs: $(VENV)/.docs-installed
	$(MKDOCS) build --strict --site-dir build/site

## Serve the documentation with live reload at http://localhost:$(DOCS_PORT)
docs-serve: $(VENV)/.docs-installed
	$(MKDOCS) serve --dev-addr 127.0.0.1:$(DOCS_PORT)

## Run every benchmark at full size (QUICK=1 for smoke sizes; NAME=unfolding for one)
bench: $(VENV)/.test-installed
	$(PY) -m benchmarks.run_all $(if $(QUICK),--quick) $(NAME)

## The GPU figures of every workflow in one short run (benchmarks/results/gpu.json)
bench-gpu: $(VENV)/.test-installed
	$(PY) -m benchmarks.gpu $(if $(QUICK),--quick) $(NAME)
