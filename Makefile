# Two commands do all the set-up on a fresh machine:
#   make train ENV=Breakout      train an agent (installs first)
#   make test                    run the test suite (installs first)
#   make lint                    ruff check and ruff format --check (installs first; ruff comes with the test extra)
# The install step creates .venv and puts the torch build named by TORCH in first, so that the
# project's torch range is already satisfied and pip never pulls another build.
#   CPU (default):   TORCH=torch==2.13.0
#   CUDA example:    make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
ENV ?= Breakout
ARGS ?=
PY := $(VENV)/bin/python

.PHONY: install lint test train clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test,plots]"
# OCAtari (envs.objects: RAM object boxes) without its dependencies: its metadata pins
# numpy<2 and GUI packages that reading boxes from RAM does not need.
	$(PY) -m pip install --quiet --no-deps ocatari==2.2.1
	touch $@

install: $(VENV)/.installed

# The paths CI lints and checks the formatting of; the rules are in pyproject.toml.
# `.venv/bin/ruff format aime envs scripts tests` formats the tree.
lint: install
	$(PY) -m ruff check aime envs scripts tests
	$(PY) -m ruff format --check aime envs scripts tests

test: install
	$(PY) -m pytest -q

train: install
	@if [ -f scripts/train_agent.py ]; then \
		$(PY) scripts/train_agent.py --env $(ENV) $(ARGS); \
	else \
		echo "scripts/train_agent.py arrives with issue 6 (the agent); installed, nothing to train yet."; \
		exit 2; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info
