# vHPC: every artifact is rebuilt from data by one make rule. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.vhpc-installed
INVENTORY ?= inventories/local.yml
CAMPAIGN  ?= embedded
# RERUN=1 measures again into a new campaign named by the UTC time instead of reusing committed raw logs.
RERUN     ?=
ifneq ($(RERUN),)
CAMPAIGN  := rerun-$(shell date -u +%Y%m%dT%H%M%SZ)
endif
PYTEST_ARGS ?=
LAB_ARGS ?=

.PHONY: help venv system-deps test-deps paper-figures test lint lab benchmarks tables clean testbed-up testbed-down FORCE

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'
	@echo "  Variables: INVENTORY=$(INVENTORY) CAMPAIGN=$(CAMPAIGN) RERUN=1 (measure again) PYTHON=$(PYTHON)"

$(STAMP): pyproject.toml
	@scripts/system-deps venv
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,mpi]'
	$(PY) -m ipykernel install --sys-prefix --name vhpc --display-name "Python (vHPC)" >/dev/null
	@touch $@

venv: $(STAMP) ## Create the project's virtualenv (idempotent): vhpclib, Intel MPI + IMB (impi-rt), Jupyter kernel

system-deps: ## Install the Debian packages figures need (chromium), or say what to install
	@scripts/system-deps figures

test-deps: ## Install the Debian packages the tests need (sshd, chromium, gfortran, iproute2)
	@scripts/system-deps test

# The report (and every figure written with it) is rebuilt when a notebook, the library, the reference
# data, the inventory or the campaign's raw logs change; RERUN=1 always runs (it measures anew).
REPORT  := figures/report.html
SOURCES := $(wildcard notebooks/0*.ipynb) $(shell find vhpclib apps -name '*.py' -o -name '*.j2') \
           $(wildcard data/reference/sacsis2011/*.csv) $(INVENTORY)
RAW     := $(shell find data/raw/$(CAMPAIGN) -type f 2>/dev/null)

paper-figures: system-deps $(REPORT) ## Run every stage notebook (papermill) and write all figures + figures/report.html

$(REPORT): $(STAMP) $(SOURCES) $(RAW) $(if $(RERUN),FORCE)
	$(VENV)/bin/vhpc paper-figures --inventory $(INVENTORY) --campaign $(CAMPAIGN) $(if $(RERUN),--rerun)

FORCE:

test: $(STAMP) test-deps lint ## Run the linter and the test suite
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (style, bugs, complexity limit) over the library, apps, tests and benchmarks
	$(VENV)/bin/ruff check vhpclib apps tests benchmarks

lab: $(STAMP) ## Open the notebooks in JupyterLab with the project's kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root)

tables: $(STAMP) ## Rebuild data/processed/ from data/raw for CAMPAIGN
	$(VENV)/bin/vhpc tables --campaign $(CAMPAIGN)

benchmarks: $(STAMP) ## Run the harness benchmarks (overhead, fan-out, blockss scaling, figure time)
	$(PY) benchmarks/harness_overhead.py
	$(PY) benchmarks/harness_cost.py
	$(PY) benchmarks/fanout.py
	$(PY) benchmarks/blockss_scaling.py
	$(PY) benchmarks/paper_figures_time.py

testbed-up: $(STAMP) ## Start a 2-node network-namespace testbed (root)
	$(VENV)/bin/vhpc testbed up --nodes 2

testbed-down: $(STAMP) ## Remove the testbed
	$(VENV)/bin/vhpc testbed down

clean: ## Remove derived files (processed tables, figures, executed notebooks); raw data stays
	rm -rf data/processed notebooks/executed
	find figures -mindepth 1 ! -name README.md -delete
