"""Shared fixtures: a private network cache per test session, repository paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session", autouse=True)
def _network_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build networks into a fresh cache so tests exercise netconvert, not a stale cache."""
    os.environ["FLOWSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("flowsim-cache"))


@pytest.fixture
def ring_yaml() -> Path:
    """The shipped ring experiment."""
    return SCENARIOS / "ring.yaml"
