# Two commands: `make run` (the whole system, embedded) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install bench clean-data chaos

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m services

test: install
	bash deploy/ci/ensure-chromium.sh
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/eligibility_engine.py

# A long fault campaign: make chaos SEED=7 FAULTS=300
SEED ?= 1
FAULTS ?= 200
chaos: install
	$(BIN)/python -m tests.chaos.run --seed $(SEED) --faults $(FAULTS)

clean-data:
	rm -rf var
