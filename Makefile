# The README's two commands. Both create .venv on first use; only python3 is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml $(wildcard setup.py) $(wildcard lightning_cam/functional/*.c)
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/activate pyproject.toml $(wildcard setup.py) $(wildcard lightning_cam/functional/*.c)
	$(BIN)/pip install -e ".[dev]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/python examples/train_cub.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

docs: $(VENV)/.installed-dev
	$(BIN)/mkdocs build --strict

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_cam.py
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) build site *.egg-info
