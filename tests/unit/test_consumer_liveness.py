"""The way out of a hung Kafka call, without a broker: the watchdog, the stable transactional id and the
retry budget of a transaction."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from perfwatch.consumer.batch import Batch
from perfwatch.consumer.clients import producer_config, transactional_id
from perfwatch.consumer.delivery import DeliveryFailed, ExactlyOnce
from perfwatch.consumer.watchdog import Watchdog
from perfwatch.settings import ConsumerSettings
from tests.unit.fakes import FakeConsumer, FakeProducer, inline


def test_watchdog_fires_with_a_thread_dump_when_a_call_passes_its_deadline() -> None:
    fired: list[tuple[str, str]] = []
    done = threading.Event()
    dog = Watchdog(on_expire=lambda what, dump: (fired.append((what, dump)), done.set()), every_s=0.01)
    try:
        with dog.deadline("quick call", 5.0):
            pass
        with dog.deadline("send_offsets_to_transaction", 0.05):
            assert done.wait(10)
    finally:
        dog.close()
    assert [w for w, _ in fired] == ["send_offsets_to_transaction"]
    assert "test_watchdog_fires" in fired[0][1]  # the stack of the thread stuck in the call


def test_transactional_id_is_stable_per_group_and_instance() -> None:
    s = ConsumerSettings(bundle=Path("b"), group_id="g", guarantee="exactly-once", instance_id="pod-0")
    assert transactional_id(s) == transactional_id(s.model_copy()) == "perfwatch-g-pod-0"
    assert producer_config(s, lambda _e: None)["transactional.id"] == "perfwatch-g-pod-0"
    assert transactional_id(s.model_copy(update={"transactional_id": "x"})) == "x"


class _AlwaysRetriable(FakeProducer):
    def send_offsets_to_transaction(self, offsets: object, _meta: object, _timeout: float) -> None:
        self.calls.append("send_offsets")
        raise KafkaException(KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE, "moving", retriable=True))


def test_transaction_retries_are_bounded_by_the_transaction_timeout_then_stop() -> None:
    p = _AlwaysRetriable()
    d = ExactlyOnce(p, FakeConsumer(), transaction_timeout_s=0.5, committer=inline)
    d.start()
    with pytest.raises(DeliveryFailed, match="unresolved after the transaction's time"):
        d.emit(Batch(next_offsets={("s", 0): 1}, first_offsets={("s", 0): 0}), [])
    assert 2 <= p.calls.count("send_offsets") < 12


class _SlowCommit(FakeProducer):
    """commit_transaction waits until released, as a commit waits for the broker's round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.committing = threading.Event()

    def commit_transaction(self, timeout: float) -> None:
        self.committing.set()
        assert self.release.wait(10)  # noqa: S101
        super().commit_transaction(timeout)


def test_a_checkpoint_commits_in_its_own_thread_while_the_loop_goes_on() -> None:
    p = _SlowCommit()
    d = ExactlyOnce(p, FakeConsumer(), checkpoint_inputs=1)  # the committer by default: a thread
    d.start()
    first = Batch(next_offsets={("s", 0): 1}, first_offsets={("s", 0): 0})
    second = Batch(next_offsets={("s", 0): 2}, first_offsets={("s", 0): 1})
    assert d.emit(first, []) == [] and p.committing.wait(10)
    assert d.emit(second, []) == [] and d.pending() == 1  # the loop is not blocked: the batch is held
    assert d.commits == 0 and p.committed_txns == []
    p.release.set()
    assert d.drain(10) == [] and d.commits == 2 and p.sent_offsets == [{("s", 0): 1}, {("s", 0): 2}]


def test_a_commit_that_fails_in_its_thread_stops_the_loop_at_its_next_turn() -> None:
    """The loop's poll raises what the commit's thread met; from then on nothing is produced or committed
    on any path (the revoke at close included): the next owner re-reads from the last commit."""
    import time

    p = _AlwaysRetriable()
    d = ExactlyOnce(p, FakeConsumer(), transaction_timeout_s=0.5)
    d.start()
    assert d.emit(Batch(next_offsets={("s", 0): 1}, first_offsets={("s", 0): 0}), []) == []  # in flight
    deadline = time.monotonic() + 10
    with pytest.raises(DeliveryFailed, match="unresolved after the transaction's time"):
        while time.monotonic() < deadline:
            d.poll()
            time.sleep(0.01)
    assert d.failed is not None and "DeliveryFailed" in d.failed
    calls = list(p.calls)
    assert d.emit(Batch(next_offsets={("s", 0): 2}, first_offsets={("s", 0): 1}), []) == []
    assert d.drain(1.0) == [] and d.poll() == [] and p.calls == calls and p.produced == []
