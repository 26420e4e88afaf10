# notifq — the two commands a newcomer needs:
#   make test   install everything (apt, Python, control plane) and run the whole suite
#   make demo   run a campaign end to end on a local control plane, live progress
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint unit integration e2e demo bench clean chart-crds chart-schema lock test-cluster cluster-build cluster-up cluster-down

# values.schema.json and the chart README are generated from the annotated values.yaml
# (tests/unit/test_chart_schema.py fails when they are stale)
chart-schema:
	$(PY) hack/chart_schema.py

# the chart carries a copy of the CRD (tests/unit/test_chart_crds.py keeps them equal)
chart-crds:
	cp crds/*.yaml charts/notifq/crds/

# Refresh the lock files from pyproject.toml (newest versions that satisfy it).
# requirements/dev.txt: everything `make test` installs; runtime.txt: the image's subset,
# pinned to the same versions. tests/unit/test_lock.py fails when they disagree with pyproject.
UV_COMPILE = uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu -q
lock: setup
	$(VENV)/bin/pip install -q uv
	$(VENV)/bin/$(UV_COMPILE) --extra dev -o requirements/dev.txt
	$(VENV)/bin/$(UV_COMPILE) -c requirements/dev.txt -o requirements/runtime.txt

setup:
	@hack/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Everything, the cluster suite included (a real one-node cluster; root). It is its own
# pytest run, serial, so that its node is down again before the other suites start (a
# session fixture would keep it up, eating the 2 cores, until the very end); the others
# run in two processes. Both runs always run, and make fails when either failed.
test: lint cluster-build
	@status=0; \
	$(VENV)/bin/pytest tests/cluster || status=1; \
	$(VENV)/bin/pytest -n 2 --dist loadfile --ignore=tests/cluster || status=1; \
	exit $$status

test-cluster: setup cluster-build
	$(VENV)/bin/pytest tests/cluster

# node binaries and images (cached under ~/.cache/notifq, keyed by versions and inputs:
# a no-op when warm; a fresh machine builds them once, about 25 minutes)
cluster-build: setup
	$(PY) hack/cluster.py build

cluster-up: setup
	$(PY) hack/cluster.py up

cluster-down:
	$(PY) hack/cluster.py down

unit: setup
	$(VENV)/bin/pytest tests/unit

integration: setup
	$(VENV)/bin/pytest tests/integration

e2e: setup
	$(VENV)/bin/pytest tests/e2e

demo: setup
	$(PY) hack/demo.py

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
