# The two commands a newcomer needs: `make dev` (a working cache on http://127.0.0.1:8080)
# and `make test`. Both create .venv and install the pinned dependencies first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test bench setup stage clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/streamcache dev $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py $(ARGS)

# Copies the shared library into each function's folder, as `fn build` does through func.yaml.
stage:
	python3 infra/stage_function.py functions/cache functions/compactor

clean:
	rm -rf $(VENV) .pytest_cache .streamcache
