"""The stratified sample of the input cube: every policy region weighs the same, small ones are whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from perfwatch.export.evaluate import read_disagreements, regions, stratified_points


def test_stratified_sample_spreads_evenly_over_the_regions() -> None:
    pts = stratified_points(100_000)
    assert len(pts) == 100_000 == len(np.unique(pts, axis=0))
    counts = Counter(regions(pts).tolist())
    assert len(counts) == 13
    assert counts["high: all three at pair level"] == 250  # smaller than a share: all of it
    big = [v for v in counts.values() if v > 4250]
    assert max(big) - min(big) <= 1  # the others share what is left


def test_disagreements_csv_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("cpu,mem,disk,policy,model\n2,85,86,HighLoad,MediumLoad\n0,95,7,HighLoad,LowLoad\n")
    assert read_disagreements(path).tolist() == [[2, 85, 86], [0, 95, 7]]
    assert read_disagreements(tmp_path / "none.csv").shape == (0, 3)
