"""The label set and the label policy of DESIGN.md (labels of the built-in synthetic data)."""

from __future__ import annotations

from typing import Final

import numpy as np

LOW: Final = "LowLoad"
MEDIUM: Final = "MediumLoad"
HIGH: Final = "HighLoad"
# Order is the class index order of the built-in models.
LABELS: Final[tuple[str, ...]] = (LOW, MEDIUM, HIGH)
ALERT_LABEL: Final = HIGH

# Thresholds (percent in use). Every one is a whole number, which is why the text template can
# floor metrics to integers without changing a label (x >= t  <=>  floor(x) >= t for integer t).
HIGH_ANY: Final = 90.0
HIGH_PAIR_CPU: Final = 80.0
HIGH_PAIR_MEM: Final = 85.0
HIGH_PAIR_DISK: Final = 85.0
MEDIUM_CPU: Final = 60.0
MEDIUM_MEM: Final = 70.0
MEDIUM_DISK: Final = 70.0

# (metric name, threshold) pairs, used to find samples near a decision boundary.
THRESHOLDS: Final[tuple[tuple[str, float], ...]] = (
    ("cpu_pct", HIGH_ANY), ("mem_pct", HIGH_ANY), ("disk_pct", HIGH_ANY),
    ("cpu_pct", HIGH_PAIR_CPU), ("mem_pct", HIGH_PAIR_MEM), ("disk_pct", HIGH_PAIR_DISK),
    ("cpu_pct", MEDIUM_CPU), ("mem_pct", MEDIUM_MEM), ("disk_pct", MEDIUM_DISK),
)


def label_for(cpu_pct: float, mem_pct: float, disk_pct: float) -> str:
    """Apply the label policy to the three required metrics."""
    if cpu_pct >= HIGH_ANY or mem_pct >= HIGH_ANY or disk_pct >= HIGH_ANY:
        return HIGH
    # int(): numpy bools add up as logical OR, which would never reach 2.
    pair = int(cpu_pct >= HIGH_PAIR_CPU) + int(mem_pct >= HIGH_PAIR_MEM) + int(disk_pct >= HIGH_PAIR_DISK)
    if pair >= 2:
        return HIGH
    if cpu_pct >= MEDIUM_CPU or mem_pct >= MEDIUM_MEM or disk_pct >= MEDIUM_DISK:
        return MEDIUM
    return LOW


def policy_indices(cpu_pct: np.ndarray, mem_pct: np.ndarray, disk_pct: np.ndarray) -> np.ndarray:
    """label_for over arrays at once: the index into LABELS of each point's label."""
    cpu, mem, disk = (np.asarray(a) for a in (cpu_pct, mem_pct, disk_pct))
    pair = (cpu >= HIGH_PAIR_CPU).astype(np.int8) + (mem >= HIGH_PAIR_MEM) + (disk >= HIGH_PAIR_DISK)
    high = (cpu >= HIGH_ANY) | (mem >= HIGH_ANY) | (disk >= HIGH_ANY) | (pair >= 2)
    medium = (cpu >= MEDIUM_CPU) | (mem >= MEDIUM_MEM) | (disk >= MEDIUM_DISK)
    return np.where(high, LABELS.index(HIGH), np.where(medium, LABELS.index(MEDIUM), LABELS.index(LOW)))


def near_boundary(cpu_pct: float, mem_pct: float, disk_pct: float, margin: float = 3.0) -> bool:
    """True when any metric lies within ``margin`` of a threshold that applies to it."""
    values = {"cpu_pct": cpu_pct, "mem_pct": mem_pct, "disk_pct": disk_pct}
    return any(abs(values[name] - t) <= margin for name, t in THRESHOLDS)
