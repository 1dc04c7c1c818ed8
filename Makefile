# Two commands that work on a fresh machine with only Python:
#   make demo   set up, run the demo study on CPU, print the report path
#   make test   set up, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.lensr-installed
DEV_STAMP := $(VENV)/.lensr-dev-installed
DOCS_STAMP := $(VENV)/.lensr-docs-installed

.PHONY: setup demo test lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Install the pinned CPU build of torch first when the environment has none, so that
# pip does not pull a multi-GB CUDA build to satisfy the range in pyproject.toml.
# `make demo` needs only the runtime dependencies; `make test` adds the dev extras
# (pytest, ruff, scikit-image, caustics) and the docs tools on top.
$(STAMP): $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(DEV_STAMP)

setup: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/lensr demo

test: $(DEV_STAMP) docs
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m pytest

# The documentation site (docs/, mkdocs.yml) into build/docs; warnings are errors, so a
# broken link or a docstring the API reference cannot render fails `make test` (~10 s).
$(DOCS_STAMP): $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m mkdocs build --strict --quiet

lint: $(DEV_STAMP)
	$(BIN)/python -m ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
