"""The consumer's batch-observed latency histogram exposes what prometheus_client's Histogram would."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from perfwatch.consumer.metrics import LATENCY_BUCKETS, BatchHistogram


def _series(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if not s.name.endswith("_created")}


def test_batches_of_values_give_the_same_series_as_one_observe_each() -> None:
    rng = np.random.default_rng(3)
    # values on bucket bounds too: "le" means a bound's own value counts in its bucket
    batches = [rng.exponential(0.3, 500), np.array(LATENCY_BUCKETS), np.array([0.0, 31.0, 1e6]), np.array([])]
    mine, theirs = CollectorRegistry(), CollectorRegistry()
    h = BatchHistogram("perfwatch_end_to_end_seconds", "doc", LATENCY_BUCKETS, mine)
    ref = Histogram("perfwatch_end_to_end_seconds", "doc", registry=theirs, buckets=LATENCY_BUCKETS)
    for b in batches:
        h.observe_many(b)
        for v in b.tolist():
            ref.observe(v)
    got, want = _series(mine), _series(theirs)
    assert got.keys() == want.keys()
    assert all(np.isclose(got[k], want[k]) for k in want)
    assert got[("perfwatch_end_to_end_seconds_count", ())] == 500 + len(LATENCY_BUCKETS) + 3
