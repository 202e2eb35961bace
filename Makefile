# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Offline test data: ../shared/data beside this checkout unless FEDSIM_DATA_DIR says otherwise.
FEDSIM_DATA_DIR ?= $(abspath ../shared/data)
export FEDSIM_DATA_DIR

.PHONY: demo test lint unit docs bench bench-quick clean

# Create the virtual environment and install fedsim with its test tools (once per pyproject change).
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/.installed  ## install, then run the built-in offline quickstart scenario
	$(BIN)/fedsim run

test: lint docs $(BIN)/.installed  ## install, then lint, type-check, build the docs and run the whole test suite
	$(BIN)/python -m pytest

unit: $(BIN)/.installed  ## the fast tests only: no Flower/Ray engine runs
	$(BIN)/python -m pytest -m "not engine"

bench: $(BIN)/.installed  ## time to accuracy, then s/round side by side (fedsim, plain loop, Flower clients) and scaling
	$(BIN)/python -m benchmarks.to_target --models 2nn,cnn
	$(BIN)/python -m benchmarks.run --scaling

bench-quick: $(BIN)/.installed  ## a short smoke run of the same (2NN, 3 rounds)
	$(BIN)/python -m benchmarks.run --quick

docs: $(BIN)/.installed  ## the documentation site, in build/docs; strict: a broken link or anchor fails it
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
