# The two commands a newcomer needs: `make dev` (a working cache on http://127.0.0.1:8080)
# and `make test`. Both create .venv and install the pinned dependencies first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test check bench setup stage clean browser

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/streamcache dev $(ARGS)

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The console's browser tests drive Debian's Chromium (never a browser downloaded by a test tool).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# The boundaries between the rooms (import-linter, pyproject.toml), the layout rules it cannot state
# (infra/check_layout.py: no import cycle, modules under 400 lines), lint (ruff) and the types of the
# core, the ports and the adapters (mypy).
check: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) infra/check_layout.py
	$(VENV)/bin/ruff check functions infra tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run.py $(ARGS)

# Copies the shared library into each function's folder, as `fn build` does through func.yaml.
stage:
	python3 infra/stage_function.py functions/cache functions/compactor

clean:
	rm -rf $(VENV) .pytest_cache .streamcache
