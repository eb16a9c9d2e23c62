# vesc-rig: `make run` and `make test` set everything up on a machine with only Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RACK   ?= fixtures/racks/sim.toml
REPORTS ?= reports
PYTEST_ARGS ?=

.PHONY: setup test run bench lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "vesc-rig needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Every test: unit, scenarios on the simulated rack, selfcheck; benchmarks run once each, untimed.
test: setup
	$(BIN)/pytest -q -n 2 --dist loadgroup --benchmark-disable $(PYTEST_ARGS)

# The scenario suite on the embedded simulated rack, with reports under $(REPORTS)/.
run: setup
	@mkdir -p $(REPORTS)
	$(BIN)/pytest tests/scenarios --rack $(RACK) --alluredir $(REPORTS)/allure-results \
		--junitxml $(REPORTS)/junit.xml $(PYTEST_ARGS)

# Benchmarks in modelled real time; results saved under $(REPORTS)/benchmarks/.
bench: setup
	@mkdir -p $(REPORTS)/benchmarks
	$(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-json $(REPORTS)/benchmarks/latest.json $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check rig tests
	$(BIN)/ruff format --check rig tests

clean:
	rm -rf $(VENV) $(REPORTS) .pytest_cache .ruff_cache .hypothesis .benchmarks *.egg-info
