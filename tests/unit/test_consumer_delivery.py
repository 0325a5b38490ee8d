"""The two delivery strategies with a fake producer: what is committed, when, and after a failure."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError, KafkaException

from perfwatch.consumer import changelog
from perfwatch.consumer.batch import Batch
from perfwatch.consumer.delivery import AtLeastOnce, DeliveryFailed, ExactlyOnce, OutputRetries
from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.routing import Record
from perfwatch.consumer.state import Changes, StateStore
from tests.unit.fakes import FakeConsumer, FakeProducer, HeldCommitter, inline

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


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_timed_out_output_is_retried_and_never_dead_lettered(guarantee: str) -> None:
    """A broker paused or partitioned past message.timeout.ms times out every record in flight: the
    cluster's trouble, not the records'. Seen in the coordinator chaos runs: a 20 s SIGSTOP took good inputs
    to "try 2 of 3", and a longer pause would have sent them all to the DLQ."""
    p = FakeProducer(fail=lambda _t, v: KafkaError._MSG_TIMED_OUT if v == b"b-1" else None)
    c = FakeConsumer()
    retries = OutputRetries(attempts=2, backoff_s=0.5)
    batch = _batch(10, 10)
    d = (AtLeastOnce(p, c, retries) if guarantee == "at-least-once"
         else ExactlyOnce(p, c, retries, committer=inline))
    waits = []
    for _ in range(5):
        if guarantee == "at-least-once":
            d.emit(batch, _records("b", start=10))
            assert d.poll() == [batch]  # handed back for re-processing, nothing of it committed
        else:
            assert d.emit(batch, _records("b", start=10)) == [batch]  # aborted: rewind and re-process
        waits.append(retries.backoff())  # what the loop sleeps before re-processing
    assert retries.give_up() == {}  # never dead-lettered
    assert c.commits == [] and p.committed_txns == []
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0]  # backoff grows to its cap: no spinning


def test_exactly_once_one_transaction_per_batch_with_its_offsets() -> None:
    p, c = FakeProducer(), FakeConsumer()
    d = ExactlyOnce(p, c, committer=inline)
    d.start()
    assert d.emit(_batch(0, 10), _records("a")) == []
    assert d.emit(_batch(10, 10), _records("b")) == []
    assert p.calls == ["init"] + ["begin", "send_offsets", "commit"] * 2
    assert p.committed_txns == [[("pred", b"a-0"), ("pred", b"a-1")], [("pred", b"b-0"), ("pred", b"b-1")]]


def test_exactly_once_abort_reports_the_batch_for_rewind() -> None:
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-1" else None)
    d = ExactlyOnce(p, FakeConsumer(), committer=inline)
    d.start()
    assert d.emit(_batch(0, 10), _records("a")) != []
    assert p.calls[-1] == "abort" and p.committed_txns == []


def test_exactly_once_counts_the_failed_record_of_an_aborted_transaction() -> None:
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-1" else None)
    retries = OutputRetries(attempts=2)
    d = ExactlyOnce(p, FakeConsumer(), retries, committer=inline)
    d.start()
    assert d.emit(_batch(0, 10), _records("a")) != []
    assert d.emit(_batch(0, 10), _records("a")) != []
    assert list(retries.give_up()) == [(T, 0, 1)]
    assert d.emit(_batch(0, 10), _records("a", n=1)) == []
    assert retries.give_up() == {}


def _changes(store: StateStore, offset: int, high: bool = True) -> tuple[Changes, list[Record]]:
    """One batch's state change for key k of partition 0, and its changelog record."""
    changes = store.begin()
    Hysteresis(2, 3).observe(changes, 0, offset, "k", high, float(offset), str)
    return changes, changelog.records(changes, "log")


def _store() -> StateStore:
    store = StateStore()
    store.assign(0)
    return store


def test_exactly_once_changelog_in_the_transaction_and_state_only_if_it_commits() -> None:
    store = _store()
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"b-1" else None)
    d = ExactlyOnce(p, FakeConsumer(), committer=inline)
    d.start()
    assert d.emit(_batch(0, 1), _records("a"), *_changes(store, 0)) == []
    assert [t for t, _ in p.committed_txns[0]] == ["pred", "pred", "log"]
    assert store.get(0, "k") is not None and store.get(0, "k").offset == 0  # type: ignore[union-attr]
    assert d.emit(_batch(1, 1), _records("b", start=1), *_changes(store, 1)) != []  # aborted
    assert store.get(0, "k").offset == 0  # type: ignore[union-attr] - its change was dropped
    assert d.emit(Batch(), [], *_changes(store, 2)) == []  # an expiry sweep: no input offsets to send
    assert p.calls[-2:] == ["begin", "commit"]


def test_at_least_once_changelog_follows_acked_outputs_in_order_then_offsets() -> None:
    store = _store()
    p, c = FakeProducer(), FakeConsumer()
    d = AtLeastOnce(p, c)
    d.emit(_batch(0, 1), _records("a"), *_changes(store, 0))
    d.emit(_batch(1, 1), _records("b", start=1), *_changes(store, 1))
    assert store.get(0, "k").offset == 1  # type: ignore[union-attr] - applied at once: the next batch reads it
    assert [t for t, _ in p.produced] == ["pred"] * 4  # no changelog record before the outputs are acked
    d.poll()  # outputs acked: changelog records produced, in batch order; offsets wait for them
    assert [t for t, _ in p.produced][4:] == ["log", "log"] and c.commits == []
    assert [json.loads(v)["o"] for t, v in p.produced if t == "log"] == [0, 1]
    d.poll()
    assert c.commits == [{(T, 0): 2}] and d.pending() == 0


def test_at_least_once_failed_output_takes_its_state_back_and_never_logs_it() -> None:
    store = _store()
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"b-0" else None)
    d = AtLeastOnce(p, FakeConsumer(), OutputRetries(attempts=3, backoff_s=0.0))
    d.emit(_batch(0, 1), _records("a"), *_changes(store, 0))
    d.emit(_batch(1, 1), _records("b", start=1), *_changes(store, 1))
    d.emit(_batch(2, 1), _records("c", start=2), *_changes(store, 2))
    assert d.poll() == []  # a's changelog produced; b failed but waits behind a
    redo = d.poll()
    assert [b.first_offsets for b in redo] == [{(T, 0): 1}, {(T, 0): 2}]
    assert store.get(0, "k").offset == 0  # type: ignore[union-attr] - b and c taken back, newest first
    assert [json.loads(v)["o"] for t, v in p.produced if t == "log"] == [0]


def test_exactly_once_checkpoint_holds_batches_until_its_input_count_then_commits_their_offsets() -> None:
    p = FakeProducer()
    d = ExactlyOnce(p, FakeConsumer(), checkpoint_s=60.0, checkpoint_inputs=25, committer=inline)
    d.start()
    assert d.emit(_batch(0, 10), _records("a")) == []
    assert d.emit(_batch(0, 10, partition=1), _records("b")) == []
    assert p.calls == ["init", "begin"] and d.poll() == [] and p.committed_txns == []  # not due yet
    assert d.emit(_batch(10, 10), _records("c", start=10)) == []  # 30 inputs ≥ 25: the checkpoint closes
    assert p.calls == ["init", "begin", "send_offsets", "commit"]
    assert p.sent_offsets == [{(T, 0): 20, (T, 1): 10}]  # every batch's offsets, a partition's latest
    assert len(p.committed_txns[0]) == 6 and d.commits == 1


def test_exactly_once_checkpoint_closes_on_time_from_poll_and_on_drain() -> None:
    import time

    p = FakeProducer()
    d = ExactlyOnce(p, FakeConsumer(), checkpoint_s=0.05, committer=inline)
    d.start()
    d.emit(_batch(0, 10), _records("a"))
    assert d.poll() == [] and p.committed_txns == []
    time.sleep(0.06)
    assert d.poll() == [] and p.sent_offsets == [{(T, 0): 10}]  # the loop's poll closes a due checkpoint
    d.emit(_batch(10, 10), _records("b", start=10))
    assert d.drain(1.0) == [] and p.sent_offsets[-1] == {(T, 0): 20}  # revoke / shutdown: no wait
    assert p.calls.count("begin") == p.calls.count("commit") == 2


def test_exactly_once_abort_hands_back_every_batch_of_the_transaction_and_their_state() -> None:
    """An abort at the checkpoint takes back all it held: the loop rewinds to the first batch, and the state
    changes of every batch are reverted, newest first (the store is as before the transaction)."""
    store = _store()
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"c-0" else None)
    d = ExactlyOnce(p, FakeConsumer(), checkpoint_s=60.0, checkpoint_inputs=3, committer=inline)
    d.start()
    a, b, c = _batch(0, 1), _batch(1, 1), _batch(2, 1)
    assert d.emit(a, _records("a"), *_changes(store, 0)) == []
    assert store.get(0, "k").offset == 0  # type: ignore[union-attr] - applied: the next batch reads it
    assert d.emit(b, _records("b", start=1), *_changes(store, 1)) == []
    assert d.emit(c, _records("c", start=2), *_changes(store, 2)) == [a, b, c]
    assert store.get(0, "k") is None and p.committed_txns == [] and p.calls[-1] == "abort"
    assert d.emit(a, _records("a"), *_changes(store, 0)) == [] and p.calls[-1] == "begin"  # a fresh one


def test_at_least_once_commits_acked_offsets_once_per_interval_async_and_sync_on_drain() -> None:
    import time

    p, c = FakeProducer(), FakeConsumer()
    d = AtLeastOnce(p, c, commit_interval_s=0.05)
    d.emit(_batch(0, 10), _records("a"))
    d.poll()
    assert c.commits == [{(T, 0): 10}] and c.asynchronous == [True]  # the first is due at once
    d.emit(_batch(10, 10), _records("b"))
    d.emit(_batch(20, 10), _records("c"))
    d.poll()
    assert len(c.commits) == 1 and d.pending() == 0  # acknowledged, held until the interval has passed
    time.sleep(0.06)
    d.poll()
    assert c.commits[-1] == {(T, 0): 30} and c.asynchronous[-1] is True
    d.emit(_batch(30, 10), _records("d"))
    d.poll()
    assert d.drain(1.0) == [] and c.commits[-1] == {(T, 0): 40} and c.asynchronous[-1] is False  # revoke, close
    d.emit(_batch(40, 10), _records("e"))
    d.poll()
    d.on_lost()  # lost partitions: the held offsets are never committed
    assert d.drain(1.0) == [] and c.commits[-1] == {(T, 0): 40}


def test_exactly_once_counts_a_batch_only_when_its_transaction_commits() -> None:
    """A batch's metrics (on_commit) follow the transaction: an aborted one counts nothing, so a batch
    re-processed after an abort is counted once (the undeliverable metric counted an input twice in a
    clean-clone CI run when the transaction holding its dead letter aborted)."""
    counted: list[str] = []
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"c-0" else None)
    d = ExactlyOnce(p, FakeConsumer(), checkpoint_s=60.0, checkpoint_inputs=3, committer=inline)
    d.start()
    assert d.emit(_batch(0, 1), _records("a"), on_commit=lambda: counted.append("a")) == []
    assert d.emit(_batch(1, 1), _records("b", start=1), on_commit=lambda: counted.append("b")) == []
    assert counted == []  # the transaction is open: nothing is visible yet, nothing counted
    assert d.emit(_batch(2, 1), _records("c", start=2), on_commit=lambda: counted.append("c")) != []
    assert counted == []  # aborted: a, b and c are re-processed and counted then
    ok = ExactlyOnce(FakeProducer(), FakeConsumer(), checkpoint_s=60.0, checkpoint_inputs=2, committer=inline)
    ok.start()
    assert ok.emit(_batch(0, 1), _records("a"), on_commit=lambda: counted.append("a")) == []
    assert ok.emit(_batch(1, 1), _records("b", start=1), on_commit=lambda: counted.append("b")) == []
    assert counted == ["a", "b"]  # the checkpoint committed both, in order, once


def test_at_least_once_counts_a_batch_when_it_is_output() -> None:
    counted: list[str] = []
    d = AtLeastOnce(FakeProducer(), FakeConsumer())
    assert d.emit(_batch(0, 1), _records("a"), on_commit=lambda: counted.append("a")) == []
    assert counted == ["a"]


def _each_batch_due(p: FakeProducer) -> tuple[ExactlyOnce, HeldCommitter]:
    """Exactly-once whose checkpoint is due after every batch, its commits held in flight until released."""
    committer = HeldCommitter()
    d = ExactlyOnce(p, FakeConsumer(), checkpoint_s=60.0, checkpoint_inputs=1, committer=committer)
    d.start()
    return d, committer


def test_exactly_once_holds_the_batches_emitted_while_a_commit_is_in_flight_then_produces_them_in_order() -> None:
    """The loop goes on while a checkpoint commits: Kafka takes no records then, so the batches emitted
    meanwhile are held (their state applied: the next batch reads it) and open the next transaction."""
    store = _store()
    counted: list[str] = []
    p = FakeProducer()
    d, committer = _each_batch_due(p)
    assert d.emit(_batch(0, 1), _records("a"), *_changes(store, 0), on_commit=lambda: counted.append("a")) == []
    assert p.calls == ["init", "begin"] and len(committer.waiting) == 1  # due at once: its commit in flight
    assert d.emit(_batch(1, 1), _records("b", start=1), *_changes(store, 1),
                  on_commit=lambda: counted.append("b")) == []
    assert d.emit(_batch(2, 1), _records("c", start=2), *_changes(store, 2),
                  on_commit=lambda: counted.append("c")) == []
    assert d.poll() == [] and d.pending() == 2  # still in flight: b and c held, nothing of them produced
    assert [t for t, _ in p.produced] == ["pred", "pred", "log"]  # a's verdicts and changelog record only
    assert store.get(0, "k").offset == 2  # type: ignore[union-attr] - held batches' state applies at once
    assert counted == []
    committer.release()
    assert d.poll() == [] and d.pending() == 0 and counted == ["a"] and d.commits == 1
    assert p.calls[-1] == "begin" and len(committer.waiting) == 1  # b and c in the next one, due at once
    committer.release()
    assert d.drain(1.0) == [] and counted == ["a", "b", "c"] and d.commits == 2
    assert [[v for t, v in txn if t == "pred"] for txn in p.committed_txns] == [
        [b"a-0", b"a-1"], [b"b-0", b"b-1", b"c-0", b"c-1"]]
    assert p.sent_offsets == [{(T, 0): 1}, {(T, 0): 3}]


def test_exactly_once_a_commit_aborting_in_flight_hands_back_it_and_every_batch_held_behind_it() -> None:
    """Aborted in flight: its batches and those held behind it are re-processed, their state taken back
    newest first; a batch emitted just then was routed over state now gone, so it is handed back too, its
    own change never applied."""
    store = _store()
    counted: list[str] = []
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-1" else None)
    d, committer = _each_batch_due(p)
    a, b, c, e = _batch(0, 1), _batch(1, 1), _batch(2, 1), _batch(3, 1)
    assert d.emit(a, _records("a"), *_changes(store, 0), on_commit=lambda: counted.append("a")) == []
    assert d.emit(b, _records("b", start=1), *_changes(store, 1)) == []
    assert d.emit(c, _records("c", start=2), *_changes(store, 2)) == []
    assert store.get(0, "k").offset == 2  # type: ignore[union-attr]
    committer.release()  # commit_transaction: a-1 was refused, the transaction must abort
    assert d.emit(e, _records("e", start=3), *_changes(store, 3)) == [a, b, c, e]
    assert store.get(0, "k") is None and d.pending() == 0  # as before a: every change taken back
    assert p.calls[-1] == "abort" and p.committed_txns == [] and counted == [] and d.commits == 0
    assert d.emit(a, _records("a", n=1), *_changes(store, 0)) == [] and p.calls[-2:] == ["abort", "begin"]


def test_exactly_once_lost_partitions_keep_a_commit_that_landed_and_drop_what_was_held() -> None:
    store = _store()
    counted: list[str] = []
    p = FakeProducer()
    d, committer = _each_batch_due(p)
    d.emit(_batch(0, 1), _records("a"), *_changes(store, 0), on_commit=lambda: counted.append("a"))
    d.emit(_batch(1, 1), _records("b", start=1), *_changes(store, 1), on_commit=lambda: counted.append("b"))
    committer.release()
    d.on_lost()
    assert counted == ["a"] and d.commits == 1 and d.pending() == 0  # a committed before the loss was seen
    assert store.get(0, "k").offset == 0  # type: ignore[union-attr] - b's change taken back
    assert [v for t, v in p.produced if t == "pred"] == [b"a-0", b"a-1"]  # b never produced


class _RefusedThenStuck(FakeProducer):
    """librdkafka's order: a refused record fails the transaction, the next produce() raises _STATE, and
    the refused record's delivery report waits in the queue until the abort polls it."""

    def produce(self, topic: str, value: bytes, key: bytes | None = None, headers: object = None,
                on_delivery: object = None, partition: int = -1) -> None:
        if any(self.fail(t, v) is not None for t, v, _ in self._queue):
            raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))
        super().produce(topic, value, key, headers, on_delivery, partition)


def test_exactly_once_counts_a_refused_record_whose_report_comes_only_with_the_abort() -> None:
    """Seen against the real broker: the failed record was looked up before the abort served its report,
    so it never reached its attempts and the transaction aborted again and again."""
    p = _RefusedThenStuck(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-0" else None)
    retries = OutputRetries(attempts=2)
    d = ExactlyOnce(p, FakeConsumer(), retries, committer=inline)
    d.start()
    batch = _batch(0, 10)
    assert d.emit(batch, _records("a")) == [batch] and p.calls[-1] == "abort"
    assert d.emit(batch, _records("a")) == [batch]
    assert list(retries.give_up()) == [(T, 0, 0)]  # its attempts are spent: its input goes to the DLQ


def test_backlog_exactly_once_counts_inputs_held_behind_a_commit_at_least_once_batches_awaiting_acks() -> None:
    """What the loop pauses its partitions on (above 1): a commit in flight holds up the batches behind it,
    against checkpoint_inputs; acks hold up batches, against max_pending_batches."""
    committer = HeldCommitter()
    d = ExactlyOnce(FakeProducer(), FakeConsumer(), checkpoint_s=0.0, checkpoint_inputs=20, committer=committer)
    d.start()
    d.emit(_batch(0, 10), _records("a"))  # due at once: its commit in flight, nothing held
    assert d.backlog() == 0.0
    d.emit(_batch(10, 10), _records("b", start=10))
    d.emit(_batch(20, 10), _records("c", start=20))
    assert d.backlog() == 1.0  # 20 inputs held: at the bound, not over it
    d.emit(_batch(30, 10), _records("d", start=30))
    assert d.backlog() == 1.5 and d.pending() == 3
    committer.release()
    assert d.poll() == [] and d.backlog() == 0.0  # the held batches went into the next transaction
    a = AtLeastOnce(FakeProducer(), FakeConsumer(), max_pending_batches=4)
    a.emit(_batch(0, 10), _records("a"))
    a.emit(_batch(10, 10), _records("b", start=10))
    assert a.backlog() == 0.5
    a.poll()  # acknowledged and committed
    assert a.backlog() == 0.0


def test_exactly_once_lost_partitions_while_the_commit_aborts_take_everything_back() -> None:
    store = _store()
    counted: list[str] = []
    p = FakeProducer(fail=lambda _t, v: KafkaError.MSG_SIZE_TOO_LARGE if v == b"a-1" else None)
    d, committer = _each_batch_due(p)
    d.emit(_batch(0, 1), _records("a"), *_changes(store, 0), on_commit=lambda: counted.append("a"))
    d.emit(_batch(1, 1), _records("b", start=1), *_changes(store, 1), on_commit=lambda: counted.append("b"))
    committer.release()  # the commit fails: a-1 was refused
    d.on_lost()
    assert counted == [] and d.commits == 0 and store.get(0, "k") is None and d.pending() == 0
    assert p.calls[-1] == "abort" and p.committed_txns == []


def test_exactly_once_a_failed_begin_hands_its_batch_back() -> None:
    """begin_transaction refused (then aborted): the batch never went out, so it is re-processed, not
    passed over by the next batch's offsets."""

    class RefusedBegin(FakeProducer):
        refused = False

        def begin_transaction(self) -> None:
            if not self.refused:
                self.refused = True
                raise KafkaException(KafkaError(KafkaError._STATE, "Erroneous state"))
            super().begin_transaction()

    store = _store()
    d = ExactlyOnce(RefusedBegin(), FakeConsumer(), committer=inline)
    d.start()
    a = _batch(0, 1)
    assert d.emit(a, _records("a"), *_changes(store, 0)) == [a]
    assert store.get(0, "k") is None  # its change taken back with it
    assert d.emit(a, _records("a"), *_changes(store, 0)) == [] and d.commits == 1


def test_exactly_once_anything_but_an_abort_stops_every_later_produce_and_commit() -> None:
    """A batch's accounting raising after its commit landed leaves held batches in no known state: nothing
    more goes out on any path, so the revoke at close cannot commit offsets past them."""
    p = FakeProducer()
    d, committer = _each_batch_due(p)

    def broken() -> None:
        raise RuntimeError("metrics broke")

    d.emit(_batch(0, 1), _records("a"), on_commit=broken)
    d.emit(_batch(1, 1), _records("b", start=1))  # held behind a's commit
    committer.release()
    with pytest.raises(RuntimeError, match="metrics broke"):
        d.poll()
    assert d.failed == "RuntimeError: metrics broke"
    assert d.emit(_batch(2, 1), _records("c", start=2)) == [] and d.drain(1.0) == []
    assert [v for t, v in p.produced if t == "pred"] == [b"a-0", b"a-1"] and p.sent_offsets == [{(T, 0): 1}]
