"""The response cache: keyed by exactly what the model sees, answers stored once, hits skip the model."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from perfwatch.consumer.batch import prepare
from perfwatch.consumer.response_cache import INPUTS, ResponseCache, keys_of, texts_of
from perfwatch.sample import Sample
from perfwatch.template import render
from tests.unit.test_consumer_pieces import RowModel, _msg
from tests.unit.test_consumer_pieces import _sample as sample_json

pct = st.floats(min_value=0, max_value=100, allow_nan=False)


def _sample(cpu: float, mem: float, disk: float) -> Sample:
    return Sample(cpu_pct=cpu, mem_pct=mem, disk_pct=disk)


@given(cpu=pct, mem=pct, disk=pct)
def test_the_key_is_the_model_input(cpu: float, mem: float, disk: float) -> None:
    """Two samples share a key exactly when they render the same model input, in every template version."""
    (k,) = keys_of([_sample(cpu, mem, disk)])
    assert 0 <= k < INPUTS
    for version in ("v1", "v2"):
        assert texts_of(np.array([k]), version) == [render(cpu, mem, disk, version)]


def test_misses_are_distinct_and_the_first_answer_stays() -> None:
    cache = ResponseCache(3)
    keys = np.array([5, 7, 5, 9, 7])
    missing, hits = cache.misses_of(keys)
    assert missing.tolist() == [5, 7, 9] and hits == 0
    first = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    cache.put(missing, first)
    cache.put(np.array([5]), np.array([[0, 0, 1.0]]))  # a second batch that also missed 5: ignored
    missing, hits = cache.misses_of(np.array([5, 9, 11]))
    assert missing.tolist() == [11] and hits == 2 and cache.entries == 3
    assert cache.get(keys).argmax(-1).tolist() == [0, 1, 0, 2, 1]


def test_a_batch_of_repeats_runs_the_model_once_per_distinct_input() -> None:
    model = RowModel()
    cache = ResponseCache(3)
    msgs = [_msg(i, sample_json(95.4 if i % 2 else 10.4)) for i in range(10)]
    first = prepare(msgs, model, 65_536, None, cache)
    assert first.encoded is not None and len(first.encoded) == 2 and first.cache_hits == 0
    probs = first.probabilities(model.run(first.encoded), cache)
    assert [int(p.argmax()) for p in probs] == [0, 2] * 5  # row i's verdict is its own input's
    again = prepare(msgs, model, 65_536, None, cache)
    assert again.encoded is None and again.cache_hits == 10  # every input seen: no model run at all
    assert again.probabilities(np.zeros((0, 3)), cache).tolist() == probs.tolist()

