# probcast developer commands. `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

# Offline machines read the benchmark data from a local mirror when one sits beside the repo.
ifneq ($(wildcard ../shared/data/manifest.json),)
export PROBCAST_DATA_MIRROR ?= $(abspath ../shared/data)
endif

.PHONY: venv lock demo test test-all lint format skill benchmarks clean

venv: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "uv==$(UV_VERSION)"
	# The versions of uv.lock (as the images install them), probcast editable, the dev extra.
	# Byte-compile at install: with PYTHONDONTWRITEBYTECODE=1 (set on some machines) every
	# process would otherwise recompile every module it imports.
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --quiet --locked --inexact --extra dev \
		--compile-bytecode --python $(BIN)/python
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

lock: venv  ## Re-resolve uv.lock after editing the dependencies in pyproject.toml.
	$(BIN)/uv lock

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
