# Developer tasks. Everything runs from the project's own virtualenv in .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Options of the broker benchmark (`kiltmq bench --help`), e.g. BENCH_ARGS=--quick
BENCH_ARGS ?=
# Frames the fuzzer sends; FUZZ_ARGS: see `python -m fuzz --help`
FUZZ_FRAMES ?= 1000000
FUZZ_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help install test lint bench fuzz soak demo screenshots rabbitmq clean

help:
	@echo "make install   create $(VENV) and install kiltmq with its test dependencies"
	@echo "make demo      run the kilt store demo on the embedded broker"
	@echo "make test      lint, then run the test suite"
	@echo "make lint      ruff check and mypy --strict"
	@echo "make bench     run the benchmarks"
	@echo "make fuzz      feed the broker FUZZ_FRAMES mutated frames (default 1000000)"
	@echo "make soak      kill -9 the broker at random moments, 100 rounds (SOAK_ARGS)"
	@echo "make rabbitmq  install (if needed) and start a local RabbitMQ (root, Debian)"
	@echo "make clean     remove $(VENV) and caches"

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,store,management]'
	@touch $(STAMP)

# Install on first use, and again when the project's dependencies change.
$(STAMP): pyproject.toml
	$(MAKE) install

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict

bench: $(STAMP)
	KILTMQ_BENCH_ARGS='$(BENCH_ARGS)' $(BIN)/python -m benchmarks

# Mutated frames against a broker process; findings and its log go to fuzz-findings/.
fuzz: $(STAMP)
	$(BIN)/python -m fuzz --frames $(FUZZ_FRAMES) $(FUZZ_ARGS)

# tools/soak.py --help: --rounds, --queues, --seed, --data-dir
SOAK_ARGS ?= --rounds 100
soak: $(STAMP)
	$(BIN)/python tools/soak.py $(SOAK_ARGS)

# The kilt store on the embedded broker; Ctrl-C stops it. DEMO_ARGS: see `kiltmq demo --help`.
DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/kiltmq demo $(DEMO_ARGS)

rabbitmq:
	bash scripts/rabbitmq.sh

screenshots: $(STAMP)
	KILTSTORE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/e2e/test_browser.py \
		tests/e2e/test_shop_browser.py tests/management/test_webui.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
