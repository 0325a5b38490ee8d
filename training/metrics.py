"""Classification metrics with numpy: accuracy, macro-F1, per-class precision/recall, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_report(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                          labels: Sequence[str]) -> dict[str, Any]:
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    # Macro over the whole label set: a class absent from the truth but predicted (a false HighLoad in a
    # slice without HighLoad) has F1 0 and counts. Absent and never predicted, nothing is wrong: F1 1
    # (sklearn's zero_division=1), so a perfect slice scores 1 whichever classes it happens to hold.
    f1 = np.where((cm.sum(0) == 0) & (cm.sum(1) == 0), 1.0, f1)
    n = int(cm.sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()) if n else 0.0,
        "per_class": {lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(cm[i].sum())} for i, lab in enumerate(labels)},
        "confusion": cm.tolist(),
    }
