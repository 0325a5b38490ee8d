"""Shared fixtures. Unit tests (tests/unit) start no process; integration tests get a broker from
tests/integration/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One session broker for every suite; fixtures are lazy, so unit tests never start it.
pytest_plugins = ["tests.kafka_fixtures", "tests.live_helpers"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real recordings vendored in examples/ (each folder has its LICENSE and NOTICE)."""
    return ROOT / "examples"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-shape model trained from scratch by the real training code (shared by the suites).

    PERFWATCH_TEST_CHECKPOINT=DIR reuses a checkpoint an earlier run trained (a copy, so tests may not
    change it): training takes minutes on a busy machine."""
    import os
    import shutil

    from perfwatch.model_settings import FixedTrainSettings
    from perfwatch.training.train import train

    out = tmp_path_factory.mktemp("tiny-train")
    if os.environ.get("PERFWATCH_TEST_CHECKPOINT"):
        return Path(shutil.copytree(os.environ["PERFWATCH_TEST_CHECKPOINT"], out / "model"))
    train(FixedTrainSettings(out=out, from_scratch="tiny", synthetic_runs=150, seed_lines=1500, coverage=30_000,
                        max_steps=600, eval_every=50, patience=4))
    return out / "model"


@pytest.fixture(scope="session")
def tiny_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle (fp32 + int8) made from the tiny checkpoint by the real export code, its int8 model
    checked against the label policy on all 1,030,301 inputs. The gate only warns here, so that a miss
    fails test_policy_check alone rather than every test that needs a bundle.
    PERFWATCH_TEST_BUNDLE=DIR reuses one an earlier run exported (saves the training on a busy machine)."""
    from perfwatch.export.bundle_writer import export_bundle
    from perfwatch.export.policy_gate import GateSettings

    if reuse := os.environ.get("PERFWATCH_TEST_BUNDLE"):
        return Path(reuse)
    tiny_checkpoint: Path = request.getfixturevalue("tiny_checkpoint")

    out = tmp_path_factory.mktemp("tiny-bundle") / "bundle"
    export_bundle(tiny_checkpoint, out, parity_samples=600, policy=GateSettings(scope="cube", allow_missed_high=True))
    return out
