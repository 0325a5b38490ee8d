"""Classification metrics: macro-F1 averages over every class of the label set."""

from __future__ import annotations

from perfwatch.training.metrics import classification_report

LABELS = ("LowLoad", "MediumLoad", "HighLoad")


def test_macro_f1_counts_a_class_predicted_but_absent_from_the_truth() -> None:
    # Truth has no HighLoad; the model invents one. That false HighLoad must cost macro-F1: the absent
    # class's F1 is 0 and it is averaged in (3 classes), not dropped (which would give (1 + 0.8) / 2).
    y_true = [0, 0, 1, 1, 1]
    y_pred = [0, 0, 1, 1, 2]
    r = classification_report(y_true, y_pred, LABELS)
    f1_medium = 2 * 1.0 * (2 / 3) / (1.0 + 2 / 3)
    assert abs(r["macro_f1"] - (1.0 + f1_medium + 0.0) / 3) < 1e-12


def test_macro_f1_of_a_perfect_slice_is_one_even_when_a_class_never_occurs() -> None:
    # A class absent from truth and predictions alike has nothing wrong: it counts as F1 1, not 0.
    r = classification_report([0, 1, 1], [0, 1, 1], LABELS)
    assert r["macro_f1"] == 1.0
    assert r["per_class"]["HighLoad"]["support"] == 0
