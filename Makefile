# vHPC: every artifact is rebuilt from data by one make rule. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.vhpc-installed
# This machine (baseline), a QEMU guest, a container, user-mode Linux, gVisor, and two namespace nodes bare
# and with a container each, all vHPC brings up itself; inventories/local.yml is this machine alone.
INVENTORY ?= inventories/host-and-guest.yml
# The campaign figures are built from (committed: embedded-layers, every environment of that inventory;
# embedded-guest, host vs TCG guest; embedded, the host alone).
# With RERUN=1 and no CAMPAIGN, vhpc resumes the last unfinished re-measure or starts rerun-<UTC>;
# RERUN=new always starts a new one.
CAMPAIGN  ?= embedded-layers
RERUN     ?=
NB        ?=
# ENV (make notebook) is read from the command line only: some shells export an ENV variable of their own.
GIVEN_CAMPAIGN := $(if $(filter command line environment,$(origin CAMPAIGN)),$(CAMPAIGN))
PYTEST_ARGS ?=
LAB_ARGS ?=

.PHONY: help venv system-deps test-deps paper-figures notebook test lint lab benchmarks tables clean testbed-up testbed-down docs

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'
	@echo "  Variables: INVENTORY=$(INVENTORY) CAMPAIGN=$(CAMPAIGN) RERUN=1 (measure again; RERUN=new: new campaign)"
	@echo "             NB=02 ENV=local (make notebook) PYTHON=$(PYTHON)"

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

# figures/<campaign>/report.html (and every figure beside it) is rebuilt when the report notebook, the
# library, the reference data or that campaign's raw logs change: each campaign has its own report, so
# `make paper-figures CAMPAIGN=ux1; make paper-figures` leaves both reports right. Nothing is measured
# unless RERUN is set (then the stage notebooks measure first; an interrupted re-measure is resumed).
REPORT  := figures/$(CAMPAIGN)/report.html
SOURCES := notebooks/05-paper-figures.ipynb $(shell find vhpclib apps -name '*.py' -o -name '*.j2' -o -name '*.css') \
           $(wildcard data/reference/sacsis2011/*.csv)
RAW     := $(shell find data/raw/$(CAMPAIGN) -type f 2>/dev/null)

ifneq ($(RERUN),)
paper-figures: $(STAMP)
	@scripts/system-deps figures $$($(VENV)/bin/vhpc deps --inventory $(INVENTORY))
	$(VENV)/bin/vhpc paper-figures --rerun --inventory $(INVENTORY) $(if $(GIVEN_CAMPAIGN),--campaign $(GIVEN_CAMPAIGN)) \
	  $(if $(filter new,$(RERUN)),--new-campaign)
else
paper-figures: system-deps $(REPORT) ## Every figure + figures/<campaign>/report.html from CAMPAIGN's raw logs (RERUN=1: measure first)
endif

$(REPORT): $(STAMP) $(SOURCES) $(RAW)
	$(VENV)/bin/vhpc figures --campaign $(CAMPAIGN)

notebook: $(STAMP) ## Execute one notebook: make notebook NB=02 [INVENTORY=...] [ENV=...] [CAMPAIGN=...]
	@test -n "$(NB)" || { echo "make notebook: say which, e.g. make notebook NB=02 (notebooks/0*.ipynb)" >&2; exit 2; }
	$(VENV)/bin/vhpc notebook $(NB) --inventory $(INVENTORY) $(if $(filter command line,$(origin ENV)),--env $(ENV)) \
	  $(if $(GIVEN_CAMPAIGN),--campaign $(GIVEN_CAMPAIGN))

docs: $(STAMP) ## Regenerate docs/inventory.md and docs/tables.md from the models and declarations
	$(PY) -m vhpclib.inventory_docs docs/inventory.md
	$(PY) -m vhpclib.table_docs docs/tables.md

test: $(STAMP) test-deps lint ## Run the linter and the test suite
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (style, bugs, complexity limit) over the library, apps, tests and benchmarks; the import contract
	$(VENV)/bin/ruff check vhpclib apps tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

lab: $(STAMP) ## Open the notebooks in JupyterLab with the project's kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root)

tables: $(STAMP) ## Rebuild data/processed/<campaign>/ from data/raw for CAMPAIGN
	$(VENV)/bin/vhpc tables --campaign $(CAMPAIGN)

benchmarks: $(STAMP) ## Run the harness benchmarks (overhead, cost, fan-out, blockss scaling, figure time, Slurm, CIs, VM boot)
	$(PY) benchmarks/harness_overhead.py
	$(PY) benchmarks/harness_cost.py
	$(PY) benchmarks/fanout.py
	$(PY) benchmarks/blockss_scaling.py
	$(PY) benchmarks/paper_figures_time.py
	$(PY) benchmarks/slurm_overhead.py
	$(PY) benchmarks/ci_efficiency.py
	$(PY) benchmarks/vm_boot.py
	$(PY) benchmarks/scale.py

testbed-up: $(STAMP) ## Start a 2-node network-namespace testbed (root)
	$(VENV)/bin/vhpc testbed up --nodes 2

testbed-down: $(STAMP) ## Remove the testbed
	$(VENV)/bin/vhpc testbed down

clean: ## Remove derived files (processed tables, figures, executed notebooks, export cache); raw data stays
	rm -rf data/processed notebooks/executed
	find figures -mindepth 1 ! -name README.md -delete
