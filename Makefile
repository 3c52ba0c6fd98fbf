# agan: the two commands of the README.
#   make test       set up .venv (when missing) and run every test, notebooks included
#   make reproduce  set up, synthesise data, train the CPU preset, regenerate figures, build the book
#   make book       the notebooks and docs/ as a static site, book/_build/html/index.html (no network needed)
# Needs only Python 3.11 and make. PYTHON=python3.11 make ... to choose the interpreter.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agan-installed
PRESET ?= cpu

.PHONY: setup test test-avx2 reproduce book lint clean-venv help

help:
	@echo "make test       - create $(VENV) if missing, install agan[dev,notebooks,int8], run all tests"
	@echo "make reproduce  - create $(VENV) if missing, then run the CPU reproduction (PRESET=paper on a GPU)"
	@echo "make test-avx2  - the precision tests as an AVX2-only CPU (AGAN_CPU_CAP=avx2; part of make test)"
	@echo "make book       - build the book (book/_build/html/index.html) from the notebooks' executed copies"
	@echo "                  where make reproduce wrote them, else the stored notebooks; BOOK_ARGS='--notebooks stored'"
	@echo "make lint       - ruff"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,notebooks,int8]'
	@touch $(STAMP)

setup: $(STAMP)

# Tests, then every notebook with nbval (lax: cells must run, outputs are not compared) at its stored,
# cheap default parameters. One BLAS/OpenMP thread for the notebooks: their tensors are tiny, and on a
# shared 2-core machine a second thread mostly waits (measured 10x slower under load).
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-avx2
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 notebooks --ignore=notebooks/executed

# Run the notebooks with papermill (params/$(PRESET).yaml): trains the preset, runs the ablations,
# regenerates figures/ (PNG) and figures/table1.{csv,md}; executed copies (each also as NAME.html) + run.log +
# summary.json in notebooks/executed/ (git-ignored); when every notebook ran, builds the book from the executed
# copies (book/_build/html/). Needs nothing from ../shared.
# The precision tests once more as an AVX2-only CPU (no AVX-512, VNNI, AMX or native bf16): the kit's view
# and oneDNN's and ATen's kernels capped (agan/cpu.py), so that any x86 machine also checks that behaviour.
PRECISION_TESTS := tests/test_cpu.py tests/test_fast.py tests/test_int8.py tests/test_choose.py
test-avx2: $(STAMP)
	AGAN_CPU_CAP=avx2 $(BIN)/python -m pytest -q -p no:cacheprovider $(PRECISION_TESTS)

reproduce: $(STAMP)
	$(BIN)/python -m agan info --preset $(PRESET)
	$(BIN)/python scripts/run_notebooks.py --params params/$(PRESET).yaml

# The book: Sphinx + MyST-NB (the book extra, part of dev), configured in book/conf.py, pages listed in
# book/index.md; notebooks are shown as executed by make reproduce (or as stored), never run here.
BOOK_ARGS ?=
book: $(STAMP)
	$(BIN)/python book/build.py $(BOOK_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check agan tests scripts benchmarks book

clean-venv:
	rm -rf $(VENV)
