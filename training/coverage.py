"""Examples drawn over the label policy's whole space, region by region.

Synthetic runs move CPU, memory and disk together (CPU leads), so corners real hosts do reach (a full
disk and busy memory on an idle CPU) are rare in them. These strata put every region of the policy in
the data: each metric ≥ 90 alone, each two-of pair with the third metric low / medium / high, each
MediumLoad cause alone and several together, LowLoad, and the whole cube uniformly; within a stratum,
values within ±3 of a threshold are drawn more often, since that is where a model goes wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from perfwatch.labels import (
    HIGH,
    HIGH_ANY,
    HIGH_PAIR_CPU,
    HIGH_PAIR_DISK,
    HIGH_PAIR_MEM,
    LABELS,
    LOW,
    MEDIUM,
    MEDIUM_CPU,
    MEDIUM_DISK,
    MEDIUM_MEM,
    THRESHOLDS,
    policy_indices,
)

METRICS = ("cpu_pct", "mem_pct", "disk_pct")
PAIR = {"cpu_pct": int(HIGH_PAIR_CPU), "mem_pct": int(HIGH_PAIR_MEM), "disk_pct": int(HIGH_PAIR_DISK)}
MED = {"cpu_pct": int(MEDIUM_CPU), "mem_pct": int(MEDIUM_MEM), "disk_pct": int(MEDIUM_DISK)}
ANY = int(HIGH_ANY)
BOUNDARY_MARGIN = 3
Range = tuple[int, int]  # inclusive whole percents


@dataclass(frozen=True)
class Stratum:
    name: str
    label: str
    ranges: tuple[Range, Range, Range]  # cpu, mem, disk


def _short(metric: str) -> str:
    return metric.split("_")[0]


def strata() -> list[Stratum]:
    """The policy's regions. Ranges are whole percents; a stratum's every point carries its label."""
    full: Range = (0, 100)
    out: list[Stratum] = []
    for i, m in enumerate(METRICS):  # one metric ≥ 90, the others anywhere
        r = [full, full, full]
        r[i] = (ANY, 100)
        out.append(Stratum(f"{_short(m)}>={ANY}", HIGH, (r[0], r[1], r[2])))
    for i, j in ((0, 1), (0, 2), (1, 2)):  # two of the pair thresholds (below 90), third low/medium/high
        k = 3 - i - j
        a, b, c = METRICS[i], METRICS[j], METRICS[k]
        thirds = {"low": (0, MED[c] - 1), "medium": (MED[c], PAIR[c] - 1), "high": (PAIR[c], ANY - 1)}
        for level, third in thirds.items():
            r = [full, full, full]
            r[i], r[j], r[k] = (PAIR[a], ANY - 1), (PAIR[b], ANY - 1), third
            out.append(Stratum(f"{_short(a)}+{_short(b)} pair, {_short(c)} {level}", HIGH, (r[0], r[1], r[2])))
    for i, m in enumerate(METRICS):  # one MediumLoad cause alone (up to 89: a single pair metric is not High)
        r = [(0, MED[o] - 1) for o in METRICS]
        r[i] = (MED[m], ANY - 1)
        out.append(Stratum(f"{_short(m)} medium alone", MEDIUM, (r[0], r[1], r[2])))
    # MediumLoad with no metric at 90, causes mixed, at most one at pair level: the near misses of the
    # two-of rule (cpu 85, mem 84, disk 10) are here.
    out.append(Stratum("medium, mixed causes", MEDIUM, ((0, ANY - 1), (0, ANY - 1), (0, ANY - 1))))
    out.append(Stratum("low", LOW, tuple((0, MED[m] - 1) for m in METRICS)))  # type: ignore[arg-type]
    out.append(Stratum("uniform", "", (full, full, full)))
    return out


def _weights(metric: str, lo: int, hi: int, boundary_weight: float) -> np.ndarray:
    values = np.arange(lo, hi + 1)
    near = np.zeros(len(values), bool)
    for name, t in THRESHOLDS:
        if name == metric:
            near |= np.abs(values - t) <= BOUNDARY_MARGIN
    w = 1.0 + boundary_weight * near
    return w / w.sum()


def stratum_points(stratum: Stratum, n: int, rng: np.random.Generator,
                   boundary_weight: float = 3.0) -> np.ndarray:
    """``n`` whole-percent points (cpu, mem, disk) of the stratum, values near a threshold weighted
    ``1 + boundary_weight``; strata that only constrain ranges loosely are filtered by their label."""
    cols = []
    for metric, (lo, hi) in zip(METRICS, stratum.ranges, strict=True):
        cols.append(rng.choice(np.arange(lo, hi + 1), size=4 * n, p=_weights(metric, lo, hi, boundary_weight)))
    pts = np.stack(cols, axis=1)
    if stratum.label:
        pts = pts[policy_indices(pts[:, 0], pts[:, 1], pts[:, 2]) == LABELS.index(stratum.label)]
    if len(pts) < n:  # cannot happen for the strata above (each keeps well over a quarter)
        raise ValueError(f"stratum {stratum.name!r}: only {len(pts)} of {n} points carry {stratum.label}")
    return pts[:n]


def coverage_points(n: int, seed: int, boundary_weight: float = 3.0) -> Iterator[tuple[str, np.ndarray]]:
    """About ``n`` points, spread evenly over the strata: (stratum name, points)."""
    rng = np.random.default_rng(seed)
    all_strata = strata()
    per = max(1, n // len(all_strata))
    for s in all_strata:
        yield s.name, stratum_points(s, per, rng, boundary_weight)
