# The one command that proves a change: lint, types, architecture, drift, tests.
PYTHON ?= python3

.PHONY: test lint unit crds

test: lint unit

lint:
	$(PYTHON) -m ruff check operator tests
	$(PYTHON) -m ruff format --check operator tests
	$(PYTHON) -m mypy
	lint-imports
	steward crds --check
	steward reference --check
	steward validate policies examples

unit:
	$(PYTHON) -m pytest

crds:
	steward crds
