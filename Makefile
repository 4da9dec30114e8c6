# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
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

clean:
	rm -rf demo-dataset .pytest_cache dist build
