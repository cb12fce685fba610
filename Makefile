# The two commands a newcomer needs:
#   make reproduce   # whole notebook suite, CPU profile, embedded data -> outputs/$(RUN_NAME)/
#   make test        # the test suite
# Overrides: make reproduce PROFILE=smoke RUN_NAME=try1 DATASET=rafdb DATA_ROOT=/path/to/dataset ONLY=10,40
#            SEED=1 (base seed of every comparison) SEEDS=5 (training seeds per compared method)
#            (DATA_ROOT without DATASET: the dataset is detected from the folder's layout)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
RUN_NAME ?= default
DATASET ?=
DATA_ROOT ?=
ONLY ?=
SEED ?=
SEEDS ?=
PYTEST_ARGS ?=

.PHONY: reproduce test install lint clean-outputs lab check bench readme

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name orsa --display-name "Python (orsa workbook)" >/dev/null
	touch $@

install: $(VENV)/.installed

reproduce: $(VENV)/.installed
	$(BIN)/orsa reproduce --profile $(PROFILE) --run-name $(RUN_NAME) $(if $(DATASET),--dataset $(DATASET)) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(ONLY),--only $(ONLY)) $(if $(SEED),--seed $(SEED)) $(if $(SEEDS),--seeds $(SEEDS))

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check orsalib tests benchmarks

check: $(VENV)/.installed
	$(BIN)/orsa check --profile $(PROFILE) $(if $(DATASET),--dataset $(DATASET)) $(if $(DATA_ROOT),--data-root $(DATA_ROOT))

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_all.py

# JupyterLab refuses to start as root without --allow-root (containers often run as root): added only then
lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# the README's numbers from finished runs (RUNS="default seed1"), or from the committed snapshot (no RUNS)
readme: $(VENV)/.installed
	$(BIN)/python -m orsalib.viz.readme $(if $(RUNS),--runs $(RUNS),--render-only)

clean-outputs:
	rm -rf outputs/*/
