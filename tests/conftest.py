"""Shared test helpers: where the repository's own manifests live."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (CRDs, policies and examples are read from here)."""
    return REPO
