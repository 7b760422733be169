# Two entry points on a fresh Linux machine: `make demo` and `make test`.
# Both create .venv, install worldgen into it (system packages first when needed), then run.
# pip keeps no cache: the install is ~7 GB (PyTorch's CUDA build and its libraries); a cache of the
# downloads would nearly double what a fresh machine's disk must hold.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: demo test setup system-deps test-deps clean bench

setup: $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

# What the test suite needs besides .venv (chromium for the viewer's browser tests); the tests
# themselves install nothing.
test-deps:
	@bash scripts/system-deps.sh --browser

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/worldgen fly worldgen/examples/example.png --depth worldgen/examples/example_depth.npy --camera worldgen/examples/example.json \
	  --path autopilot --frames 60 --size 384x256 --out $(DEMO_OUT) --overwrite

test: $(STAMP) test-deps
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs build *.egg-info
