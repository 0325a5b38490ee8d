"""The bundle and checkpoint a benchmark runs: given ones, the trained DistilGPT-2-shape artifacts, or a
quickly trained one (speed depends on the shape, not on how well the weights are trained)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from perfwatch.bundle import read_manifest
from perfwatch.console import console
from perfwatch.model_settings import TemplateVersion
from perfwatch.template import TEMPLATE_VERSION

SHAPE_DIMS = {"distilgpt2": (6, 768), "tiny": (2, 128), "small": (4, 256)}


def _matches(bundle: Path, shape: str) -> bool:
    try:
        return shape_of(bundle) == shape
    except Exception:  # noqa: BLE001 - any unreadable bundle is "not this one"
        return False


def shape_of(bundle: Path) -> str | None:
    """The bench shape a bundle has (by layers and width), or None."""
    m = read_manifest(bundle)
    dims = (m.shape.get("n_layer"), m.shape.get("n_embd"))
    return next((name for name, d in SHAPE_DIMS.items() if d == dims), None)


def ensure_bench_bundle(shape: str, workdir: Path = Path("artifacts/bench")) -> Path:
    return ensure_bench_artifacts(shape, workdir)[0]


def ensure_template_bundle(shape: str, template: str, workdir: Path = Path("artifacts/bench")) -> Path:
    """A bundle of the shape for another text template, trained briefly: its speed, not its accuracy."""
    bundle, ckpt = workdir / f"bundle-{shape}-{template}", workdir / f"train-{shape}-{template}" / "model"
    if not (_matches(bundle, shape) and read_manifest(bundle).template_version == template):
        _quick(shape, bundle, ckpt, template)
    return bundle


def _quick(shape: str, bundle: Path, ckpt: Path, template: str) -> None:
    from perfwatch.export.bundle_writer import export_bundle
    from perfwatch.model_settings import FixedTrainSettings, Shape
    from perfwatch.training.train import train

    steps = 300 if shape == "tiny" else 80
    console.print(f"no {shape} bundle ({template}) yet: training one for {steps} steps (throughput does not depend "
                  "on it) …")
    train(FixedTrainSettings(out=ckpt.parent, from_scratch=cast(Shape, shape), synthetic_runs=100, seed_lines=1000,
                             max_steps=steps, eval_every=max(50, steps // 2), patience=100,
                             template=cast(TemplateVersion, template)))
    # Throughput only: no policy check (a short-trained model misses HighLoad, and checking costs minutes).
    export_bundle(ckpt, bundle, min_int8_agreement=0.0, parity_samples=200, policy=None)


def ensure_bench_artifacts(shape: str, workdir: Path = Path("artifacts/bench")) -> tuple[Path, Path]:
    """(bundle, checkpoint) of the given shape."""
    if shape == "distilgpt2":  # the README's recipe writes artifacts/train/model
        for ckpt in (Path("artifacts/train/model"), Path("artifacts/train-distilgpt2/model")):
            if _matches(Path("artifacts/bundle"), shape) and (ckpt / "config.json").exists():
                return Path("artifacts/bundle"), ckpt
    bundle, ckpt = workdir / f"bundle-{shape}", workdir / f"train-{shape}" / "model"
    if _matches(bundle, shape) and (ckpt / "config.json").exists():
        return bundle, ckpt
    _quick(shape, bundle, ckpt, TEMPLATE_VERSION)
    return bundle, ckpt
