# The commands people and CI run. Each target sets up .venv first (fast when up to date).
.PHONY: setup demo test lint protos up

VENV := .venv/bin

setup:
	@bash scripts/setup.sh

# Start the three services, ingest the sample corpus, ask a sample question, stop.
demo: setup
	@bash scripts/demo.sh

up: setup
	$(VENV)/raildebug up

protos: setup
	$(VENV)/python protos/generate.py

lint: setup
	$(VENV)/python protos/generate.py --check
	$(VENV)/ruff check .
	$(VENV)/mypy raildebug services training tests protos benchmarks scripts

test: lint
	$(VENV)/python -m pytest
