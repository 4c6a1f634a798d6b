# Two commands for a new user: `make demo` runs the workflow on the embedded demo,
# `make test` runs the test suite. Each creates .venv and installs the package when needed.
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,dev
CORES ?= all
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)

test: $(BIN)/.installed
	$(BIN)/pytest -n 2 --dist loadfile --durations=15

lint: $(BIN)/.installed
	$(BIN)/ruff check src workflow tests benchmarks
	$(BIN)/snakemake --lint --cores 1

clean:
	rm -rf results .snakemake resources/demo
