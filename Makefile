# The commands people and CI run. Each target sets up .venv first (fast when up to date).
.PHONY: setup demo test test-fast lint scan protos up

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
	$(VENV)/python -m raildebug.settings_report --check
	$(VENV)/ruff check .
	$(VENV)/lint-imports --no-cache
	$(VENV)/mypy raildebug services training apps tests protos benchmarks scripts

# Security scan: bandit over the code, pip-audit over the installed packages; accepted findings
# and why: security/accepted-findings.toml. Packages pip-audit could not check (PyPI's advisory
# data unreachable) are listed as NOT audited; RAILDEBUG_SCAN_STRICT=1 makes that an error.
scan: setup
	$(VENV)/python scripts/scan.py

# Everything: lint and scan, then every test tier (what CI runs, .ci/run).
test: lint scan
	$(VENV)/python -m pytest

# The fast tier while you work: no model loaded, no server or child process started (markers and
# the guard: tests/fixtures/tiers.py). A few minutes on 2 cores; `make test` before you push.
test-fast: setup
	$(VENV)/python -m pytest -m "not model and not service"
