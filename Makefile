# Two commands set everything up: `make install`, then `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch is small and enough for everything here; set TORCH=torch for your platform's default build.
TORCH  ?= torch==2.13.0

.PHONY: install test demo clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "installed: activate with 'source $(BIN)/activate' or run $(BIN)/nextword"

test:
	$(BIN)/python -m pytest -q

# A small model on the bundled corpus, then what it predicts: about two minutes on a 2-core CPU.
demo:
	$(BIN)/nextword train corpora/stories.txt --config small --time-budget 90s --out models/demo --force
	$(BIN)/nextword predict models/demo "once upon a "
	$(BIN)/nextword predict models/demo "she opened the "
	$(BIN)/nextword generate models/demo "The next morning" --max-words 40 --seed 1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
