# vesc-rig: `make run` and `make test` set everything up on a machine with only Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RACK   ?= fixtures/racks/sim.toml
REPORTS ?= reports
PYTEST_ARGS ?=

.PHONY: setup test run nightly report bench bench-baseline bench-compare lint check-schemas panel-screenshots clean

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

# Type check of rig/, then every test: unit, scenarios on the simulated rack, selfcheck; benchmarks run once
# each, untimed.
test: setup
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadgroup --benchmark-disable $(PYTEST_ARGS)

# The operator panel's screenshots in docs/panel/ (docs/panel.md), taken by its browser test.
panel-screenshots: setup
	RIG_PANEL_SCREENSHOTS=$(CURDIR)/docs/panel $(BIN)/pytest -q tests/unit/test_panel_browser.py

# The scenario suite on the embedded simulated rack, with reports under $(REPORTS)/.
run: setup
	@mkdir -p $(REPORTS)
	$(BIN)/pytest tests/scenarios --rack $(RACK) --alluredir $(REPORTS)/allure-results --clean-alluredir \
		--junitxml $(REPORTS)/junit.xml $(PYTEST_ARGS)

# The night's run on a rack (docs/recipes/nightly.md): every station in parallel, the wide disconnect sweep,
# the Allure report, and the throughput gate when a baseline exists; exits non-zero if a test failed.
JOBS ?= 2
nightly: setup
	@mkdir -p $(REPORTS)
	$(BIN)/pytest tests/scenarios --rack $(RACK) -n $(JOBS) --dist loadgroup --disconnect-sweep nightly \
		--alluredir $(REPORTS)/allure-results --clean-alluredir --junitxml $(REPORTS)/junit.xml $(PYTEST_ARGS); \
	status=$$?; \
	$(MAKE) --no-print-directory report || status=1; \
	if [ -f $(BASELINE) ]; then $(MAKE) --no-print-directory bench-compare || status=1; \
	else echo "no throughput baseline at $(BASELINE) (make bench-baseline on the release): gate skipped"; fi; \
	echo "nightly: Allure report in $(REPORTS)/allure-report (serve: python -m http.server -d $(REPORTS)/allure-report)"; \
	echo "nightly: JUnit XML $(REPORTS)/junit.xml, benchmarks $(BENCH_DIR)/"; \
	exit $$status

# HTML report of the last `make run` with the real Allure 3 CLI (npm, installed into .allure/); JUnit XML beside it.
# RESULTS=folder reports another run (a benchmark run's --alluredir, say). The CLI comes from npm on first use
# (Node.js 20+ and npm, and the registry that once); after that no network. It prints how to open the report.
RESULTS ?= $(REPORTS)/allure-results
report: setup
	@scripts/install-allure.sh >/dev/null
	$(BIN)/python -m rig.report.allure_html $(RESULTS) -o $(REPORTS)/allure-report
	@if [ -f $(REPORTS)/junit.xml ]; then echo "JUnit XML: $(REPORTS)/junit.xml"; fi

BENCH_DIR   ?= $(REPORTS)/benchmarks
BENCH_RUN    = $(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-json $(BENCH_DIR)/latest.json

# Benchmarks in modelled real time: $(BENCH_DIR)/latest.json and the chart $(BENCH_DIR)/throughput.svg.
bench: setup
	@mkdir -p $(BENCH_DIR)
	$(BENCH_RUN) $(PYTEST_ARGS)
	$(BIN)/python -m rig.report.throughput_chart $(BENCH_DIR)/latest.json -o $(BENCH_DIR)/throughput.svg

# Release regression: on the release, `make bench-baseline` keeps its run as $(BENCH_DIR)/baseline.json; on a
# candidate, `make bench-compare [BASELINE=file.json]` fails if any benchmark's modelled device time grew more than
# 2 % (rig.report.bench_gate). Wall times are reported beside it, not gated: they move with the machine's load.
BASELINE ?= $(BENCH_DIR)/baseline.json
bench-baseline: setup
	@mkdir -p $(BENCH_DIR)
	$(BENCH_RUN) $(PYTEST_ARGS)
	cp $(BENCH_DIR)/latest.json $(BASELINE)
	@echo "baseline: $(BASELINE)"

bench-compare: setup
	@mkdir -p $(BENCH_DIR)
	@test -f $(BASELINE) || { echo "no baseline at $(BASELINE): run make bench-baseline on the release first"; exit 2; }
	$(BENCH_RUN) $(PYTEST_ARGS)
	$(BIN)/python -m rig.report.throughput_chart $(BENCH_DIR)/latest.json -o $(BENCH_DIR)/throughput.svg
	$(BIN)/python -m rig.report.bench_gate $(BASELINE) $(BENCH_DIR)/latest.json

lint: setup
	$(BIN)/ruff check rig tests
	$(BIN)/ruff format --check rig tests

clean:
	rm -rf $(VENV) $(REPORTS) .allure .pytest_cache .ruff_cache .hypothesis .benchmarks *.egg-info
