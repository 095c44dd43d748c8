# capi-relay: `make demo` runs the relay end to end locally; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test unit demo dev bench lint check-infra requirements clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

test: install
	bash tools/check_prereqs.sh test
	$(VENV)/bin/ruff check functions ops dev tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider
	bash tools/check_infra.sh

unit: install
	$(PY) -m pytest -q -m "not integration and not browser" tests/unit tests/conformance

demo: install
	bash tools/check_prereqs.sh
	$(PY) -m capi_relay_dev.demo

dev: install
	bash tools/check_prereqs.sh
	$(PY) -m capi_relay_dev.devstack

bench: install
	-bash tools/install_wrk.sh
	$(PY) benchmarks/bench.py

lint: install
	$(VENV)/bin/ruff check functions ops dev tests benchmarks

check-infra:
	bash tools/check_infra.sh

requirements: install
	$(PY) scripts/gen_requirements.py

clean:
	rm -rf $(VENV) .venv-tools .pytest_cache
