# The two README commands: `make demo` and `make test`. Both create the virtual environment on
# first use; VENV may point elsewhere (CI keeps it in a cache keyed by the requirements' hash).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements
REQS := requirements.txt tools/install-learn2learn.sh

.PHONY: venv demo test test-slow test-gpu bench gpu-check reproduce mutate clean

# A dangling or foreign .venv link is replaced first (tools/venv-link.sh). Installs only when the
# requirements differ from those the environment was built with, so a
# re-run with the environment present installs nothing; the editable install of this checkout is
# redone only when the environment was made for a checkout elsewhere (CI's shared cache) or the
# project's packages changed (pyproject.toml). The environment is made at the link's target:
# `python -m venv` refuses a path that is a symbolic link, which is how CI's cache is attached.
venv:
	@sh tools/venv-link.sh $(VENV)
	@if ! cat $(REQS) | cmp -s - $(STAMP); then \
		set -e; \
		python3 -m venv "$$(realpath -m $(VENV))"; \
		$(PYTHON) -m pip install --quiet wheel cython; \
		$(PYTHON) -m pip install --quiet -r requirements.txt; \
		sh tools/install-learn2learn.sh $(PYTHON); \
		cat $(REQS) > $(STAMP); \
	fi
	@if ! { echo "$(CURDIR)"; cat pyproject.toml; } | cmp -s - $(VENV)/.editable; then \
		$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e . && \
		{ echo "$(CURDIR)"; cat pyproject.toml; } > $(VENV)/.editable; \
	fi

demo: venv
	$(PYTHON) -m playground demo

test: venv
	$(PYTHON) -m pytest -q

test-slow: venv
	$(PYTHON) -m pytest -q -m "slow and not gpu"

# The README's GPU table, on a machine with a CUDA GPU.
test-gpu: venv
	$(PYTHON) -m pytest -q -m gpu

# ruff, configured in pyproject.toml: lint and formatting (`ruff format .` fixes the latter).
lint: venv
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench: venv
	$(PYTHON) -m benchmarks

# Needs a CUDA GPU (exits 2 without one): device plumbing of every scenario, engine equality and
# CUDA-graph capture on the GPU, a short training run; the report goes to benchmarks/gpu_check.md.
# `python tools/gpu_check.py --device cpu` runs the same checks on the CPU.
gpu-check: venv
	$(PYTHON) tools/gpu_check.py

# One result table of the README, or all of them without TABLE (hours): tools/reproduce.py.
reproduce: venv
	$(PYTHON) tools/reproduce.py $(TABLE)

# Mutation testing of the core modules, or of MODULE (e.g. MODULE=bilevel/solvers.py): tools/mutate.py
# writes tools/mutation/report.md. Hours for all of them on two cores; mutmut's cache in mutants/
# makes a rerun retest only what changed.
mutate: venv
	$(PYTHON) tools/mutate.py $(MODULE)

clean:
	rm -rf runs .pytest_cache mutants
