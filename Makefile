# Two commands set everything up: `make install`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed first, as TORCH from pip's own indexes (and find-links), unless TORCH_INDEX names
# one: PyPI's Linux wheel of torch is the CUDA build (several GB); the CPU build (about 200 MB, enough
# for everything here) is `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: install test lint demo clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
		$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)") "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "installed: activate with 'source $(BIN)/activate' or run $(BIN)/nextword"

test:
	$(BIN)/python -m pytest -q

# pyflakes, pycodestyle and bugbear, as pyproject.toml's [tool.ruff] selects them, and whether the code is as
# `ruff format` writes it (run that to fix it); CI runs it before the tests.
lint:
	$(BIN)/ruff check nextword tests bench corpora
	$(BIN)/ruff format --check nextword tests bench corpora

# A small model on the bundled corpus, then what it predicts: about two minutes on a 2-core CPU.
demo:
	$(BIN)/nextword train corpora/stories.txt --config small --time-budget 90s --out models/demo --force
	$(BIN)/nextword predict models/demo "once upon a "
	$(BIN)/nextword predict models/demo "she opened the "
	$(BIN)/nextword generate models/demo "The next morning" --max-words 40 --seed 1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
