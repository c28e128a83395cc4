# PacketTracer: two commands on a fresh Debian 12 machine as root.
#   make run    set up (system packages + .venv) and start the live dashboard
#   make test   set up with test dependencies and run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
ARGS   ?=

.PHONY: run test setup setup-test lint typecheck bench clean

$(VENV)/.run-stamp: pyproject.toml setup.py scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh run
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test-stamp: $(VENV)/.run-stamp
	bash scripts/install-system-deps.sh test
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.run-stamp
setup-test: $(VENV)/.test-stamp

run: setup
	bash scripts/rebuild-compiled.sh
	$(VENV)/bin/packettracer $(ARGS)

test: setup-test
	bash scripts/rebuild-compiled.sh
	bash scripts/run-tests.sh

lint: setup-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

bench: setup-test
	bash scripts/rebuild-compiled.sh
	bash scripts/run-benchmarks.sh

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	rm -f src/*__mypyc*.so src/packettracer/model/dpi/*.so
