# agan: the two commands of the README.
#   make test       set up .venv (when missing) and run every test, notebooks included
#   make reproduce  set up, synthesise data, train the CPU preset, regenerate figures
# Needs only Python 3.11 and make. PYTHON=python3.11 make ... to choose the interpreter.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agan-installed
PRESET ?= cpu

.PHONY: setup test reproduce lint clean-venv help

help:
	@echo "make test       - create $(VENV) if missing, install agan[dev,notebooks], run all tests"
	@echo "make reproduce  - create $(VENV) if missing, then run the CPU reproduction (PRESET=paper on a GPU)"
	@echo "make lint       - ruff"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,notebooks]'
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

reproduce: $(STAMP)
	$(BIN)/python -m agan info --preset $(PRESET)

lint: $(STAMP)
	$(BIN)/ruff check agan tests

clean-venv:
	rm -rf $(VENV)
