"""The cost-per-host goals as the bench judges them, and the trained bundles it is given for the template rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perfwatch.app.cli import main
from perfwatch.bench.run import _cost_goals, template_bundles_by_version
from perfwatch.bundle import read_manifest
from perfwatch.errors import BundleError

SLICES_OK = {"test": 1.0, "boundary": 0.999, "seed-text": 1.0, "coverage": 0.998}


def _result(v2_rate: float, v2_slices: dict[str, float], v1_slices: dict[str, float] = SLICES_OK) -> dict[str, Any]:
    templates = [{"template": "v1", "bundle": "b1", "samples_per_s": 300.0, "slices": v1_slices},
                 {"template": "v2", "bundle": "b2", "samples_per_s": v2_rate, "slices": v2_slices}]
    hits = [{"case": c, "samples_per_s": r, "hit_rate": h} for c, r, h in
            (("cache off", 290.0, 0.0), ("0 %", 295.0, 0.0), ("50 %", 700.0, 0.5), ("90 %", 2500.0, 0.9))]
    ceiling = [{"round": r, "guarantee": g, "checkpoint_ms": ms, "samples_per_s": v}
               for r, g, ms, v in ((0, "at-least-once", 100, 15_000.0), (0, "exactly-once", 100, 14_000.0),
                                   (1, "at-least-once", 100, 20_000.0), (1, "exactly-once", 100, 12_000.0),
                                   (2, "at-least-once", 100, 16_000.0), (2, "exactly-once", 100, 14_400.0),
                                   (2, "exactly-once", 0, 7_000.0))]
    return {"bundle": "b1", "cost": {"templates": templates, "hit_rates": hits, "ceiling": ceiling,
                                     "kafka_only": {"samples_per_s": 40_000.0}}}


def _template_goal(r: dict[str, Any]) -> dict[str, Any]:
    return next(g for g in _cost_goals(r, 300.0) if g["goal"].startswith("raw model ≥ 2 ×"))


def test_a_faster_template_meets_the_goal_only_at_equal_accuracy() -> None:
    assert _template_goal(_result(660.0, SLICES_OK))["met"]
    short_trained = _template_goal(_result(660.0, {**SLICES_OK, "boundary": 0.93}))
    assert not short_trained["met"] and "no" in short_trained["figure"]
    assert not _template_goal(_result(590.0, SLICES_OK))["met"]  # 1.97×
    assert not _template_goal(_result(660.0, SLICES_OK, v1_slices={**SLICES_OK, "test": 0.99}))["met"]


def test_the_ceiling_goal_names_what_the_kafka_clients_alone_reach() -> None:
    goal = next(g for g in _cost_goals(_result(660.0, SLICES_OK), 300.0) if g["goal"].startswith("loop ceiling"))
    assert not goal["met"] and "40,000" in goal["figure"]


def test_a_template_bundle_must_be_a_bundle_of_the_benchs_shape(tiny_bundle: Path, tmp_path: Path) -> None:
    version = read_manifest(tiny_bundle).template_version
    assert template_bundles_by_version([tiny_bundle], "tiny") == {version: tiny_bundle}
    with pytest.raises(BundleError, match="shape tiny, not distilgpt2"):
        template_bundles_by_version([tiny_bundle], "distilgpt2")


def test_the_cli_refuses_a_template_bundle_that_is_not_one_before_training_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*_: Any) -> None:
        raise AssertionError("the bench went on to train a bundle")

    monkeypatch.setattr("perfwatch.bench.bundle.ensure_bench_artifacts", no_training)
    code = main(["bench", "--shape", "tiny", "--only", "cost", "--template-bundle", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "r.json")])
    assert code != 0 and "no model bundle at" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_exactly_once_is_judged_on_the_median_rounds_ratio() -> None:
    # rounds' exactly-once / at-least-once: 0.93, 0.60, 0.90 → the median round is the third (0.90)
    goal = next(g for g in _cost_goals(_result(660.0, SLICES_OK), 300.0) if g["goal"].startswith("exactly-once"))
    assert goal["met"] and abs(goal["value"] - 0.9) < 1e-9 and "0.60" in goal["figure"]
    ceiling = next(g for g in _cost_goals(_result(660.0, SLICES_OK), 300.0) if g["goal"].startswith("loop ceiling"))
    assert ceiling["value"] == 16_000.0  # at-least-once of that same round
