import pytest

from perfwatch.labels import HIGH, LABELS, LOW, MEDIUM, label_for, near_boundary


@pytest.mark.parametrize(
    ("cpu", "mem", "disk", "expected"),
    [
        # any metric >= 90 is HighLoad, 89.99 is not
        (90, 0, 0, HIGH), (0, 90, 0, HIGH), (0, 0, 90, HIGH),
        (89.99, 0, 0, MEDIUM), (0, 89.99, 0, MEDIUM), (0, 0, 89.99, MEDIUM),
        # two of cpu>=80, mem>=85, disk>=85
        (80, 85, 0, HIGH), (80, 0, 85, HIGH), (0, 85, 85, HIGH),
        (79.99, 85, 0, MEDIUM), (80, 84.99, 0, MEDIUM), (0, 84.99, 85, MEDIUM),
        (80, 84.99, 84.99, MEDIUM),
        # medium: cpu>=60 or mem>=70 or disk>=70
        (60, 0, 0, MEDIUM), (0, 70, 0, MEDIUM), (0, 0, 70, MEDIUM),
        (59.99, 69.99, 69.99, LOW), (0, 0, 0, LOW), (100, 100, 100, HIGH),
    ],
)
def test_policy_at_and_around_each_threshold(cpu: float, mem: float, disk: float, expected: str) -> None:
    assert label_for(cpu, mem, disk) == expected


def test_label_order_is_low_medium_high() -> None:
    assert LABELS == (LOW, MEDIUM, HIGH)


def test_near_boundary() -> None:
    assert near_boundary(88, 10, 10)
    assert near_boundary(10, 72.9, 10)
    assert not near_boundary(50, 50, 50)



def test_numpy_metrics_get_the_same_labels_as_python_numbers() -> None:
    """numpy bools add up as logical OR (True + True is True), so the two-of rule never fired on numpy
    metrics: label_for(np.int64(80), np.int64(85), np.int64(0)) was MediumLoad."""
    import numpy as np

    assert label_for(np.int64(80), np.int64(85), np.int64(0)) == HIGH
    assert label_for(np.float64(0), np.float64(86), np.float64(87)) == HIGH


def test_vectorised_policy_matches_label_for_on_the_whole_cube() -> None:
    import numpy as np

    from perfwatch.labels import policy_indices

    v = np.arange(101)
    cpu, mem, disk = (a.ravel() for a in np.meshgrid(v, v, v, indexing="ij"))
    got = policy_indices(cpu, mem, disk)
    index = {lab: i for i, lab in enumerate(LABELS)}
    want = np.array([index[label_for(int(c), int(m), int(d))] for c, m, d in zip(cpu, mem, disk, strict=True)])
    assert got.shape == (101**3,) and (got == want).all()
