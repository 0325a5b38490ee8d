"""Shared fixtures. Unit tests (tests/unit) start no process; integration tests get a broker from
tests/integration/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One session broker for every suite; fixtures are lazy, so unit tests never start it.
pytest_plugins = ["tests.kafka_fixtures"]

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("PERFWATCH_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = shared_dir() / "data" / "real"
    if not path.is_dir():
        pytest.fail(f"shared real recordings not found at {path} (set PERFWATCH_SHARED)")
    return path
