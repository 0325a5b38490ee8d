"""The response cache: a model answer kept per model input, so that a repeated input skips the model.

A sample reaches the model as three whole percents, so the model can only ever see 101³ = 1,030,301
inputs (perfwatch/template.py). The cache is therefore a table over all of them rather than an LRU: a
row of float32 probabilities per input plus a "filled" flag, 13 MB for three labels, allocated once and
never evicted. The pages are touched only as inputs arrive (RSS grows with the distinct inputs seen,
never past the table), a lookup is one numpy gather for a whole batch, and there is no per-entry Python
object to count or to collect. An LRU of Python objects would spend more memory on 100,000 entries
than this table on the whole space.

The key is the floored triple, which is exactly what the template renders: every template version is a
function of it, and a cache belongs to one model. fp32 answers are the model's (batching does not move
them); int8 answers are the first ones computed for an input, so an input's int8 verdict no longer moves
with the contents of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perfwatch.template import INPUTS, SIDE, HasMetrics, render


def keys_of(samples: Sequence[HasMetrics]) -> np.ndarray:
    """One int per sample: floor(cpu)·101² + floor(mem)·101 + floor(disk) (metrics are validated to 0..100)."""
    m = np.floor(np.array([(s.cpu_pct, s.mem_pct, s.disk_pct) for s in samples], dtype=np.float64).reshape(-1, 3))
    return (m[:, 0] * SIDE * SIDE + m[:, 1] * SIDE + m[:, 2]).astype(np.int64)


def texts_of(keys: np.ndarray, version: str) -> list[str]:
    """The model input text of each key (the inverse of keys_of)."""
    return [render(k // (SIDE * SIDE), k // SIDE % SIDE, k % SIDE, version) for k in keys.tolist()]


def table_bytes(n_labels: int) -> int:
    """The cache's memory when every input is in it: float32 per label and a flag per input."""
    return INPUTS * (4 * n_labels + 1)


class ResponseCache:
    def __init__(self, n_labels: int) -> None:
        # np.zeros maps untouched pages lazily: memory follows the inputs actually seen.
        self._probs = np.zeros((INPUTS, n_labels), dtype=np.float32)
        self._filled = np.zeros(INPUTS, dtype=bool)
        self.entries = 0

    @property
    def nbytes(self) -> int:
        """The table's size when every input is filled (the most it can ever hold)."""
        return table_bytes(self._probs.shape[1])

    def misses_of(self, keys: np.ndarray) -> tuple[np.ndarray, int]:
        """The distinct keys among ``keys`` with no answer yet (what the model must run), and how many of
        ``keys`` were hits."""
        missing = ~self._filled[keys]
        n_miss = int(missing.sum())
        return (np.unique(keys[missing]) if n_miss else keys[:0]), len(keys) - n_miss

    def put(self, keys: np.ndarray, probs: np.ndarray) -> None:
        """Store the answers of keys not yet filled (two batches in flight may both have missed one: the
        first answer stored stays)."""
        fresh = ~self._filled[keys]
        self.entries += int(fresh.sum())
        self._probs[keys[fresh]] = probs[fresh]
        self._filled[keys[fresh]] = True

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Probabilities, one row per key; every key must have been put."""
        return self._probs[keys].astype(np.float64)
