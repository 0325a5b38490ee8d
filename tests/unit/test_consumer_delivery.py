"""The two delivery strategies with a fake producer: what is committed, when, and after a failure."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from perfwatch.consumer.batch import Batch
from perfwatch.consumer.delivery import AtLeastOnce, DeliveryFailed, ExactlyOnce, OutputRetries
from perfwatch.consumer.routing import Record
from tests.unit.fakes import FakeConsumer, FakeProducer

T = "samples"


def _batch(start: int, n: int, partition: int = 0) -> Batch:
    return Batch(first_offsets={(T, partition): start}, next_offsets={(T, partition): start + n})


def _records(tag: str, n: int = 2, topic: str = "pred", start: int = 0, reason: str | None = None) -> list[Record]:
    return [Record(topic, None, f"{tag}-{i}".encode(), source=(T, 0, start + i), reason=reason) for i in range(n)]


def test_at_least_once_commits_each_batch_once_all_its_records_are_acked() -> None:
    p, c = FakeProducer(), FakeConsumer()
    d = AtLeastOnce(p, c)
    d.emit(_batch(0, 10), _records("a"))
    d.emit(_batch(10, 10), _records("b"))
    assert c.commits == [] and d.pending() == 2
    d.poll()
    assert c.commits == [{(T, 0): 20}] and d.pending() == 0


def test_at_least_once_never_commits_past_a_dead_letter_that_failed_on_any_path() -> None:
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"b-0" else None)
    c = FakeConsumer()
    d = AtLeastOnce(p, c, OutputRetries(attempts=1))
    d.emit(_batch(0, 10), _records("a"))
    d.poll()
    assert c.commits == [{(T, 0): 10}]
    d.emit(_batch(10, 10), _records("b", topic="dlq", start=10, reason="bad_json"))
    d.emit(_batch(20, 10), _records("c", start=20))
    with pytest.raises(DeliveryFailed):
        d.poll()
    d.emit(_batch(30, 10), _records("d", start=30))  # e.g. the revoke on close finishing the batches in hand
    d.drain(1.0)  # revoke and close drain: they must not commit either
    with pytest.raises(DeliveryFailed):
        d.poll()
    assert c.commits == [{(T, 0): 10}]


def test_at_least_once_failed_output_is_retried_then_its_input_given_up() -> None:
    """A failed output: the failed batch and all after it come back for re-processing (nothing of them
    committed); after ``attempts`` failures its input is handed over for the DLQ."""
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"b-1" else None)
    c = FakeConsumer()
    retries = OutputRetries(attempts=2, backoff_s=0.0)
    d = AtLeastOnce(p, c, retries)
    a, b, later = _batch(0, 10), _batch(10, 10), _batch(20, 10)
    d.emit(a, _records("a"))
    d.emit(b, _records("b", start=10))
    d.emit(later, _records("c", start=20))
    assert d.poll() == [b, later]
    assert c.commits == [{(T, 0): 10}] and d.pending() == 0 and retries.give_up() == {}
    d.emit(b, _records("b", start=10))
    assert d.poll() == [b]
    assert list(retries.give_up()) == [(T, 0, 11)]
    d.emit(b, [r for r in _records("b", start=10) if r.source != (T, 0, 11)])  # routed to the DLQ instead
    assert d.poll() == [] and c.commits[-1] == {(T, 0): 20}
    assert retries.give_up() == {}  # forgotten once committed


def test_exactly_once_one_transaction_per_batch_with_its_offsets() -> None:
    p, c = FakeProducer(), FakeConsumer()
    d = ExactlyOnce(p, c)
    d.start()
    assert d.emit(_batch(0, 10), _records("a"))
    assert d.emit(_batch(10, 10), _records("b"))
    assert p.calls == ["init"] + ["begin", "send_offsets", "commit"] * 2
    assert p.committed_txns == [[("pred", b"a-0"), ("pred", b"a-1")], [("pred", b"b-0"), ("pred", b"b-1")]]


def test_exactly_once_abort_reports_the_batch_for_rewind() -> None:
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-1" else None)
    d = ExactlyOnce(p, FakeConsumer())
    d.start()
    assert not d.emit(_batch(0, 10), _records("a"))
    assert p.calls[-1] == "abort" and p.committed_txns == []


def test_exactly_once_counts_the_failed_record_of_an_aborted_transaction() -> None:
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-1" else None)
    retries = OutputRetries(attempts=2)
    d = ExactlyOnce(p, FakeConsumer(), retries)
    d.start()
    assert not d.emit(_batch(0, 10), _records("a"))
    assert not d.emit(_batch(0, 10), _records("a"))
    assert list(retries.give_up()) == [(T, 0, 1)]
    assert d.emit(_batch(0, 10), _records("a", n=1))
    assert retries.give_up() == {}
