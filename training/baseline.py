"""A lookup baseline with no learning: each evaluation input takes the label of its nearest training
input (whole-percent metrics, Euclidean distance; ties go to the smallest point). Its score
beside the model's shows what the model learned beyond remembering its neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perfwatch.training.data import Example


def _points(examples: Sequence[Example]) -> np.ndarray:
    return np.floor(np.array([e.metrics for e in examples], dtype=np.float64)).astype(np.int32)


def nearest_labels(train: Sequence[Example], queries: Sequence[Example], labels: Sequence[str],
                   chunk: int = 256) -> np.ndarray:
    """Label index of each query's nearest training input."""
    index = {lab: i for i, lab in enumerate(labels)}
    pts = _points(train)
    # One training label per distinct point (the first seen), which also makes the search smaller.
    uniq, first = np.unique(pts, axis=0, return_index=True)
    y = np.array([index[train[i].label] for i in first])
    q = _points(queries)
    out = np.empty(len(q), dtype=np.int64)
    for i in range(0, len(q), chunk):
        d = ((q[i: i + chunk, None, :] - uniq[None, :, :]) ** 2).sum(axis=-1)
        out[i: i + chunk] = y[d.argmin(axis=1)]
    return out
