# probcast developer commands. `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Offline machines read the benchmark data from a local mirror when one sits beside the repo.
ifneq ($(wildcard ../shared/data/manifest.json),)
export PROBCAST_DATA_MIRROR ?= $(abspath ../shared/data)
endif

.PHONY: venv demo test test-all lint format skill benchmarks clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	# Byte-compile at install: with PYTHONDONTWRITEBYTECODE=1 (set on some machines) every
	# process would otherwise recompile every module it imports.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[dev]"
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

demo: venv  ## Main job: fetch, prepare, train, predict, baselines, verify, report.
	$(BIN)/probcast demo --dataset verif-norway-precip --out outputs/demo

test: venv  ## The test suite CI runs (slow tests excluded).
	$(BIN)/pytest -m "not slow" -q

test-all: venv
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

skill: venv  ## Every benchmark dataset through the whole chain; regenerates benchmarks/skill.md.
	$(BIN)/probcast demo --all --out outputs/skill --skill-table benchmarks/skill.md

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache .ruff_cache
