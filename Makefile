# The two set-up commands of the README:
#   make demo   create or reuse .venv, install, fetch the data, open the demo app on the shipped models
#   make test   create or reuse .venv, install, run the whole test suite
# The CPU build of torch is installed before the project, so nothing pulls a multi-GB CUDA build.
# The core install is lean (no streamlit, no datasets); the demo and the suite need the extras below.
# For a GPU, see the README: install the CUDA torch wheel into the venv first, then `make demo`.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[app,hf,sklearn,test]"
	touch $(STAMP)

install: $(STAMP)

# The fetch shows each step; offline, the app starts anyway and says what to do.
demo: $(STAMP)
	-$(VENV)/bin/personalize data fetch
	$(VENV)/bin/personalize app

# The same showcases in the terminal, no browser.
demo-cli: $(STAMP)
	$(VENV)/bin/personalize demo

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

# The mutation pass of docs/mutation.md over the learners and the recommender metrics ([tool.mutmut] in
# pyproject.toml; the mutants go to mutants/, git-ignored). Results are cached: a second run only tests what changed.
mutation: $(STAMP)
	$(VENV)/bin/mutmut run
	$(VENV)/bin/mutmut results

.PHONY: install demo demo-cli test test-fast mutation
