"""The consumer's pieces without a broker: hysteresis, routing, batching and the inference pool's order."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from perfwatch.consumer.batch import prepare
from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.inference import InferencePool
from perfwatch.consumer.routing import route
from perfwatch.consumer.state import StateStore
from perfwatch.labels import HIGH, LABELS
from perfwatch.runtime.model import Encoded
from perfwatch.sample import Sample
from perfwatch.verdict import ModelRef

MODEL = ModelRef(id="m", sha256="0" * 64)


class RowModel:
    """Encodes each text as one row holding its index; run() gives HighLoad to rows whose text says cpu ≥ 90.
    ``slow_first`` makes the part holding a batch's first row finish last (forces out-of-order completion)."""

    labels = LABELS
    template_version = "v1"  # run() reads the metric names

    def __init__(self, slow_first: bool = False) -> None:
        self.slow_first = slow_first
        self.finished: list[int] = []
        self._lock = threading.Lock()
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> Encoded:
        start = len(self.texts)
        self.texts.extend(texts)
        ids = np.arange(start, start + len(texts)).reshape(-1, 1)
        return Encoded(ids, np.ones_like(ids))

    def run(self, enc: Encoded) -> np.ndarray:
        first = int(enc.input_ids[0, 0])
        if self.slow_first and first % 48 == 0:
            time.sleep(0.2)
        with self._lock:
            self.finished.append(first)
        out = np.zeros((len(enc), len(LABELS)))
        for row, i in enumerate(enc.input_ids[:, 0]):
            out[row, LABELS.index(HIGH) if self.texts[int(i)].startswith("cpu 9") else 0] = 1.0
        return out


def _msg(offset: int, value: bytes, key: bytes = b"r1/h", partition: int = 0,
         ts_ms: int | None = None) -> Message:
    return Message(topic="s", partition=partition, offset=offset, key=key, value=value,
                   timestamp=(TIMESTAMP_CREATE_TIME, ts_ms if ts_ms is not None else int(time.time() * 1000)))


def _sample(cpu: float, host: str = "h") -> bytes:
    return Sample(run_id="r1", host=host, cpu_pct=cpu, mem_pct=10, disk_pct=10).model_dump_json().encode()


def _observe(h: Hysteresis, store: StateStore, offset: int, is_high: bool) -> str | None:
    changes = store.begin()
    state = h.observe(changes, 0, offset, "k", is_high, 100.0 + offset, lambda st: st)
    changes.apply()
    return state


def test_hysteresis_fires_after_n_of_m_and_resolves_once() -> None:
    h, store = Hysteresis.parse("3/5"), StateStore()
    store.assign(0)
    highs = [True, True, False, True, True, True, False, False, False, False]
    states = [_observe(h, store, i, x) for i, x in enumerate(highs)]
    assert [s for s in states if s] == ["firing", "resolved"]
    assert states.index("firing") == 3


@pytest.mark.parametrize("spec", ["0/5", "6/5", "3", "a/b", ""])
def test_hysteresis_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        Hysteresis.parse(spec)


def test_batching_splits_valid_and_invalid_and_tracks_offsets() -> None:
    model = RowModel()
    msgs = [_msg(5, _sample(10)), _msg(6, b"{not json"), _msg(7, _sample(95)), _msg(3, _sample(1), partition=1)]
    b = prepare(msgs, model, max_bytes=65536, mem_total_gb=None)  # type: ignore[arg-type]
    assert len(b) == 4 and len(b.valid) == 3 and b.invalid[0][1].reason == "bad_json"
    assert b.first_offsets == {("s", 0): 5, ("s", 1): 3} and b.next_offsets == {("s", 0): 8, ("s", 1): 4}
    assert b.encoded is not None and len(b.encoded) == 3


def test_routing_verdicts_alerts_and_dead_letters() -> None:
    model = RowModel()
    msgs = [_msg(0, _sample(10)), _msg(1, _sample(95)), _msg(2, b"")]
    b = prepare(msgs, model, max_bytes=65536, mem_total_gb=None)  # type: ignore[arg-type]
    assert b.encoded is not None
    records, verdict_labels = route(b, model.run(b.encoded), LABELS, MODEL, predictions_topic="p", alerts_topic="a",
                                     dlq_topic="d", emit_predictions=True, hysteresis=None, dlq_max_bytes=100)
    assert verdict_labels == [LABELS[0], HIGH]
    assert [r.topic for r in records] == ["p", "p", "a", "d"]
    dead = dict(records[-1].headers or [])
    assert dead["perfwatch.error.reason"] == b"empty" and dead["perfwatch.source.offset"] == b"2"


def test_inference_pool_collects_in_submit_order_when_parts_finish_out_of_order() -> None:
    model = RowModel(slow_first=True)
    pool = InferencePool(model, workers=3, min_split=16)
    try:
        batches = []
        for k in range(4):
            b = prepare([_msg(48 * k + i, _sample(float(i))) for i in range(48)], model,  # type: ignore[arg-type]
                        max_bytes=65536, mem_total_gb=None)
            batches.append(b)
            pool.submit(b)
        out = [pool.pop_oldest() for _ in range(4)]
    finally:
        pool.shutdown()
    assert [b for b, _ in out] == batches
    assert all(len(p) == 48 for _, p in out)
    assert model.finished != sorted(model.finished), "the parts did not finish out of order"


def test_staged_hysteresis_changes_nothing_until_applied() -> None:
    h, store = Hysteresis.parse("2/3"), StateStore()
    store.assign(0)
    _observe(h, store, 0, True)
    dropped = store.begin()
    assert h.observe(dropped, 0, 1, "k", True, 1.0, str) == "firing"  # e.g. its transaction aborts
    kept = store.begin()
    assert h.observe(kept, 0, 1, "k", True, 1.0, str) == "firing"  # the retry sees the state from before it
    kept.apply()
    st = store.get(0, "k")
    assert st is not None and st.firing and st.bits == 0b11
    assert h.observe(store.begin(), 0, 2, "k", False, 2.0, str) is None


def test_a_timestamp_past_year_9999_is_a_dead_letter_not_a_crash() -> None:
    model = RowModel()
    b = prepare([_msg(0, _sample(10), ts_ms=253_402_300_800_000 + 86_400_000), _msg(1, _sample(10))], model,  # type: ignore[arg-type]
                max_bytes=65536, mem_total_gb=None)
    assert [exc.reason for _, exc in b.invalid] == ["bad_timestamp"] and len(b.valid) == 1
