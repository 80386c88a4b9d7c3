# The two README commands: `make demo` and `make test`. Both create the virtual environment on
# first use; VENV may point elsewhere (CI keeps it in a cache keyed by the requirements' hash).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements
REQS := requirements.txt tools/install-learn2learn.sh

.PHONY: venv demo test test-slow bench clean

# Installs only when the requirements differ from those the environment was built with, so a
# re-run with the environment present installs nothing.
venv:
	@if ! cat $(REQS) | cmp -s - $(STAMP); then \
		set -e; \
		python3 -m venv $(VENV); \
		$(PYTHON) -m pip install --quiet wheel cython; \
		$(PYTHON) -m pip install --quiet -r requirements.txt; \
		sh tools/install-learn2learn.sh $(PYTHON); \
		$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .; \
		cat $(REQS) > $(STAMP); \
	fi

demo: venv
	$(PYTHON) -m playground demo

test: venv
	$(PYTHON) -m pytest -q

test-slow: venv
	$(PYTHON) -m pytest -q -m slow

bench: venv
	$(PYTHON) -m benchmarks

clean:
	rm -rf runs .pytest_cache
