# One command to set up and run each job; the virtual environment is created on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format simulate train bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and exact: the CPU build; a looser pin pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,tune,resco]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

simulate: $(STAMP)
	$(BIN)/flowsim simulate scenarios/ring.yaml --steps 3000

train: $(STAMP)
	$(BIN)/flowsim train scenarios/ring.yaml

bench: $(STAMP)
	$(BIN)/flowsim bench env --config scenarios/ring.yaml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
