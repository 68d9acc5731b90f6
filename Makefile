# `make run` and `make test` work on a fresh machine: they create .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_VERSION := 26.3
# The Dagster instance (dagster.yaml) lives at the repo root, its state under .dagster/.
export DAGSTER_HOME := $(CURDIR)

.PHONY: setup run sql test dev sample bench backtest profile screenshots clean

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

run: setup
	$(BIN)/keha-maksatus run

# A read-only SQL shell on the published warehouse (after make run): .tables, .describe TABLE, SELECT ...;
sql: setup
	$(BIN)/keha-maksatus sql

test: setup
	$(BIN)/pytest

dev: setup
	$(BIN)/dagster dev

# Speed and memory at 1M and 10M decisions against bare DuckDB and pandas (see docs/benchmarks.md).
bench: setup
	$(BIN)/python benchmarks/bench.py

# The nowcast's backtest (five generated seeds and the bundled sample, about a minute): coverage of
# the 80 % and 95 % intervals, MAE, Brier by months before the period's end; CSVs and the plot under
# build/backtest/, and the generated block of docs/forecast.md with its plot (see docs/forecast.md).
backtest: setup
	$(BIN)/keha-maksatus backtest --doc docs/forecast.md

# Where a 10M full run's time goes (pyinstrument; needs the data make bench writes): build/bench/profile.html.
profile: setup
	$(BIN)/python benchmarks/profile_run.py

# Pictures of the dashboards and report that `make run` wrote (needs Debian's chromium).
screenshots: setup
	$(BIN)/python -m dashboards.screenshots

# Regenerate the committed sample landing folder (deterministic) and the manifest of its
# SHA-256 digests, data/sample.sha256: the demo key serves only these files.
sample: setup
	rm -rf data/sample
	$(BIN)/keha-maksatus sample --out data/sample
	$(BIN)/python -c "from keha_maksatus.ingest.privacy import write_sample_manifest; write_sample_manifest()"

clean:
	rm -rf warehouse .dagster build
