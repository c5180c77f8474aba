# The README's two set-up commands. Both create .venv when missing and install
# torch from its pinned CPU wheel first (a looser pin pulls gigabytes of CUDA).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-latest lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ungrok demo

# Two pytest workers on two cores: one torch thread each, or OpenMP barriers stall them.
# The report's browser test needs headless Chromium; ensure-chromium installs it when it can.
test: $(STAMP)
	bash .ci/ensure-chromium
	$(BIN)/ruff check src tests bench
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests

# The newest releases of every dependency (torch stays pinned), in a separate venv: does the
# suite still pass without constraints.txt?
test-latest:
	test -x .venv-latest/bin/python || $(PY) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q torch==2.13.0
	.venv-latest/bin/python -m pip install -q --upgrade -e '.[dev]'
	OMP_NUM_THREADS=1 .venv-latest/bin/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) .venv-latest build *.egg-info
