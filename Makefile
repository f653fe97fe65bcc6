# Koan: `make run` serves a local tutor, `make test` runs the whole suite. Both set up everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
# One more test worker than this machine's two cores: the suite's tests often wait on what they
# start (servers, a browser, the sandbox), and a third worker fills those waits (docs/benchmarks.md).
PYTEST_WORKERS ?= 3

.DEFAULT_GOAL := help
.PHONY: help install system-deps bench-deps run test lint typecheck check bench clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# No pip in the venv (uv installs into it); pip's own bootstrap is the slowest part of `venv`.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

# uv resolves and installs the pinned set in seconds (pip takes 40-60 s); bytecode is compiled
# at install, Koan's own sources too (an editable install leaves them out), so that every process
# the suite starts imports from .pyc files even where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PYTHON) -m pip --python $(BIN)/python install --quiet -c constraints.txt uv 2>/dev/null \
		|| { $(BIN)/python -m ensurepip --default-pip >/dev/null \
		&& $(BIN)/python -m pip install --quiet -c constraints.txt uv; }
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c constraints.txt -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 src >/dev/null
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Koan with its development tools

system-deps: ## Install system packages (bubblewrap for the sandbox, Chromium and its headless shell for browser tests) as root
	@if command -v bwrap >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 \
		&& command -v chromium-headless-shell >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q bubblewrap chromium chromium-headless-shell >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null \
		&& apt-get install -y -q bubblewrap chromium chromium-headless-shell >/dev/null; }; \
	else echo "note: bubblewrap/chromium missing: weaker sandbox tier, browser tests skipped"; fi

run: install system-deps ## Migrate, load the built-in exercises and serve on http://$(HOST):$(PORT) (mail links there too unless KOAN_BASE_URL is set)
	$(BIN)/koan db upgrade
	$(BIN)/koan exercises import --builtin
	@# Mails link to the address served here, unless KOAN_BASE_URL is set (environment or .env).
	@if [ -z "$${KOAN_BASE_URL:-}" ] && ! grep -qs '^KOAN_BASE_URL=' .env; then \
		export KOAN_BASE_URL="http://$(HOST):$(PORT)"; fi; \
	echo "Mail links to $${KOAN_BASE_URL:-(KOAN_BASE_URL in .env)}"; \
	exec $(BIN)/koan serve --host $(HOST) --port $(PORT)

test: install system-deps ## Run the whole test suite
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: install ## ruff, and the import contracts (docs/architecture.md)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-cache

typecheck: install ## mypy (strict on src/)
	$(BIN)/mypy

check: lint typecheck test ## Everything CI checks

bench-deps: install ## Install what the benchmarks use: their Python extras, and wrk (as root) for bench/throughput.py
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[dev,bench]'
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q wrk >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }; \
	else echo "note: wrk missing (bench/throughput.py needs it): install it with your package manager"; fi

bench: bench-deps ## Run the benchmarks and write docs/benchmarks.md
	$(BIN)/python bench/grading.py --write
	$(BIN)/python bench/adaptive.py --write
	$(BIN)/python bench/web.py

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
