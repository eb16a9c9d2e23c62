# vesc-rig: `make run` and `make test` set everything up on a machine with only Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RACK   ?= fixtures/racks/sim.toml
REPORTS ?= reports
PYTEST_ARGS ?=

.PHONY: setup test run report bench bench-baseline bench-compare lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "vesc-rig needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# labgrid (dev) brings pyserial-labgrid, which owns the same `serial` files as pyserial: the one installed
	@# last is on disk, so it depends on install order. Tests run upstream pyserial, the rig's own dependency.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps pyserial
	touch $(STAMP)

setup: $(STAMP)

# Every test: unit, scenarios on the simulated rack, selfcheck; benchmarks run once each, untimed.
test: setup
	$(BIN)/pytest -q -n 2 --dist loadgroup --benchmark-disable $(PYTEST_ARGS)

# The scenario suite on the embedded simulated rack, with reports under $(REPORTS)/.
run: setup
	@mkdir -p $(REPORTS)
	$(BIN)/pytest tests/scenarios --rack $(RACK) --alluredir $(REPORTS)/allure-results --clean-alluredir \
		--junitxml $(REPORTS)/junit.xml $(PYTEST_ARGS)

# HTML report of the last `make run` with the real Allure 3 CLI (npm, installed into .allure/); JUnit XML beside it.
report: setup
	scripts/install-allure.sh
	$(BIN)/python -m rig.report.allure_html $(REPORTS)/allure-results -o $(REPORTS)/allure-report
	@echo "JUnit XML: $(REPORTS)/junit.xml"

BENCH_DIR   ?= $(REPORTS)/benchmarks
BENCH_STORE := file://$(abspath $(BENCH_DIR))/saved
BASELINE    ?=
BENCH_RUN    = $(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-storage $(BENCH_STORE) \
               --benchmark-json $(BENCH_DIR)/latest.json

# Benchmarks in modelled real time: $(BENCH_DIR)/latest.json and the chart $(BENCH_DIR)/throughput.svg.
bench: setup
	@mkdir -p $(BENCH_DIR)
	$(BENCH_RUN) $(PYTEST_ARGS)
	$(BIN)/python -m rig.report.throughput_chart $(BENCH_DIR)/latest.json -o $(BENCH_DIR)/throughput.svg

# Release regression: on the release, `make bench-baseline` saves a run under $(BENCH_DIR)/saved/;
# on a candidate, `make bench-compare [BASELINE=0001]` fails if any benchmark's mean is >10% slower
# than the baseline (default: the latest saved run).
bench-baseline: setup
	@mkdir -p $(BENCH_DIR)
	$(BENCH_RUN) --benchmark-save baseline $(PYTEST_ARGS)

bench-compare: setup
	@mkdir -p $(BENCH_DIR)
	$(BENCH_RUN) --benchmark-compare$(if $(BASELINE),=$(BASELINE)) --benchmark-compare-fail mean:10% $(PYTEST_ARGS)
	$(BIN)/python -m rig.report.throughput_chart $(BENCH_DIR)/latest.json -o $(BENCH_DIR)/throughput.svg

lint: setup
	$(BIN)/ruff check rig tests
	$(BIN)/ruff format --check rig tests

clean:
	rm -rf $(VENV) $(REPORTS) .allure .pytest_cache .ruff_cache .hypothesis .benchmarks *.egg-info
