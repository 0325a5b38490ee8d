"""The bundle against the label policy: the tiny shape is right on (nearly) every input it can see and
never misses HighLoad; export refuses a bundle that does; `perfwatch evaluate` reports it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perfwatch.bundle import read_manifest

pytestmark = pytest.mark.slow


def test_tiny_bundle_agrees_with_the_policy_on_the_whole_cube(tiny_bundle: Path) -> None:
    """Checked by export over all 101³ inputs (int8, what the consumer runs); fp32 on int8's
    disagreements and a uniform sample."""
    checks = read_manifest(tiny_bundle).metrics["policy_check"]
    int8, fp32 = checks["int8"], checks["fp32"]
    assert int8["scope"] == "cube" and int8["n"] == 101**3
    assert sum(map(sum, int8["confusion"])) == 101**3
    assert int8["missed_high"] == 0, f"missed HighLoad on the cube: {int8['by_region']}"
    assert int8["agreement"] >= 0.999, int8["by_region"]
    assert fp32["missed_high"] == 0 and fp32["scope"] == "disagreements+uniform" and fp32["n"] >= 19_000
    rows = list(csv.DictReader((tiny_bundle / "policy-check" / "policy-check-int8-disagreements.csv").open()))
    assert len(rows) == int8["disagreement_count"] == round((1 - int8["agreement"]) * 101**3)
    assert (tiny_bundle / "policy-check" / "policy-check-int8-disagreements.png").stat().st_size > 20_000
    card = (tiny_bundle / "model_card.md").read_text()
    assert "<!-- policy-check:int8 -->" in card and "all 1,030,301 whole-percent inputs" in card


def _never_high_checkpoint(tmp_path: Path) -> Path:
    """A real model trained on data with no HighLoad at all: it can never say HighLoad."""
    from perfwatch.model_settings import FixedTrainSettings
    from perfwatch.training.train import train

    f = tmp_path / "no-high.csv"
    lines = ["cpu_pct,mem_pct,disk_pct,label"]
    for cpu, mem, disk in np.random.default_rng(0).integers(0, 101, (3000, 3)).tolist():
        lines.append(f"{cpu},{mem},{disk},{'MediumLoad' if cpu >= 60 or mem >= 70 or disk >= 70 else 'LowLoad'}")
    f.write_text("\n".join(lines) + "\n")
    train(FixedTrainSettings(out=tmp_path / "t", from_scratch="tiny", synthetic_runs=0, seed_lines=0, coverage=0,
                        data=[f], max_steps=30, eval_every=30))
    return tmp_path / "t" / "model"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                          timeout=900, check=False)


@pytest.mark.timeout(1800)  # three checks of the 138,201-input HighLoad surface on 2 cores
def test_export_refuses_a_bundle_that_misses_highload_unless_overridden(tmp_path: Path) -> None:
    ckpt = _never_high_checkpoint(tmp_path)
    out = tmp_path / "bundle"
    res = _cli("export", str(ckpt), "--out", str(out), "--precision", "int8", "--parity-samples", "200",
               "--policy-check", "surface", "--policy-check-sample", "500")
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert "misses HighLoad" in res.stderr and "cpu " in res.stderr
    assert not out.exists() and not out.with_name("bundle.tmp").exists()  # no bundle left behind
    kept = out.with_name("bundle.policy-check")
    missed = [r for r in csv.DictReader((kept / "policy-check-int8-disagreements.csv").open())
              if r["policy"] == "HighLoad"]
    from perfwatch.export.evaluate import gate_points
    from perfwatch.labels import policy_indices

    pts = gate_points(500)
    assert len(missed) == int((policy_indices(pts[:, 0], pts[:, 1], pts[:, 2]) == 2).sum())  # each one listed

    res = _cli("export", str(ckpt), "--out", str(out), "--precision", "int8", "--parity-samples", "200",
               "--policy-check", "surface", "--policy-check-sample", "500", "--allow-missed-highload")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "warning" in res.stdout + res.stderr
    check = read_manifest(out).metrics["policy_check"]["int8"]
    assert check["missed_high"] == len(missed)

    # `perfwatch evaluate` on that bundle: the same verdict, exit 1 (it misses HighLoad)
    res = _cli("evaluate", str(out), "--sample", "500")
    assert res.returncode == 1, res.stderr[-2000:]
    summary = json.loads((out / "policy-check" / "policy-check-int8.json").read_text())
    assert summary["missed_high"] == len(missed) and summary["scope"] == "surface+uniform"


def test_evaluate_stratified_checks_the_other_precisions_disagreements(tiny_bundle: Path, tmp_path: Path) -> None:
    """fp32 after int8's whole-cube check: a sample spread over every region plus each input int8 got wrong."""
    import shutil

    from perfwatch.export.evaluate import read_disagreements

    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    int8_wrong = read_disagreements(bundle / "policy-check" / "policy-check-int8-disagreements.csv")
    out = subprocess.run([sys.executable, "-m", "perfwatch.app.cli", "evaluate", str(bundle), "--precision", "fp32",
                          "--stratified", "2600"], capture_output=True, text=True, timeout=600)
    assert out.returncode in (0, 1), out.stderr
    fp32 = read_manifest(bundle).metrics["policy_check"]["fp32"]
    assert fp32["scope"] == "stratified+disagreements"
    assert 2600 <= fp32["n"] <= 2600 + len(int8_wrong)
    assert all(r["n"] >= 100 for name, r in fp32["by_region"].items() if "all three" not in name), fp32["by_region"]
