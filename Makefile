# HPO Studio: `make run` starts the app, `make test` runs the tests.
# Both create ./.venv and install what they need on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: run test test-fast install install-dev bench clean-runs

$(BIN)/.installed: requirements.txt requirements-base.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

## run: the app on the embedded default data set (digits), at http://localhost:$(PORT)
run: install
	$(BIN)/python -m app.serve --server.port $(PORT)

## test: every test, browser tests included (needs Debian's chromium; see README)
test: install-dev
	$(BIN)/python -m pytest

## test-fast: the quick loop (< 1 min): no TensorFlow, no browser, nothing slow
test-fast: install-dev
	HPO_TEST_FAST=1 $(BIN)/python -m pytest -n 2 -m "not slow and not e2e and not tf"

bench: install-dev
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-runs:
	rm -rf runs/* logs/*.log*
