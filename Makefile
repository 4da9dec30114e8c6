# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(PY) -m compileall -q exporter  # bytecode, as for an installed package (PYTHONDONTWRITEBYTECODE may be set)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tgexport convert examples/harbor_city_dispatch -o demo-dataset --overwrite
	$(PY) examples/analyze_polars.py demo-dataset

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check exporter tests examples
	$(VENV)/bin/ruff check exporter tests examples

format: $(STAMP)
	$(VENV)/bin/ruff format exporter tests examples
	$(VENV)/bin/ruff check --fix exporter tests examples

# Benchmark against /work/shared/bench/e2e_naive.py (docs/performance.md). Quick mode:
#   make bench BENCH_SIZES=100000 BENCH_RUNS=1
BENCH_SIZES ?= 100000 1000000 5000000
BENCH_RUNS ?= 3
BENCH_CHANNELS ?= 5
bench: $(STAMP)
	$(PY) bench/run.py --sizes $(BENCH_SIZES) --runs $(BENCH_RUNS) --channels $(BENCH_CHANNELS)

clean:
	rm -rf demo-dataset .pytest_cache dist build
