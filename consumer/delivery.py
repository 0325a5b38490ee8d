"""How a batch's output records reach Kafka and its input offsets get committed: two strategies behind
one small interface, so the loop never branches on the guarantee.

at-least-once: a batch's offsets are committed once every record it produced is acknowledged.
exactly-once: transactions with send_offsets_to_transaction, each closed at a checkpoint (time or inputs)
and holding one or more batches; readers use read_committed.

A batch's hysteresis state changes (consumer/state.py) come with their changelog records. Exactly-once: the
changelog records go in the batch's transaction; the changes apply at once and are taken back if the
transaction aborts (an aborted batch leaves no trace). At-least-once: the changes apply at once too; the
changelog records are produced once the batch's outputs are acknowledged, in batch order (a stored `firing`
is always a delivered one, and a key's later state is never overwritten by an earlier one), and the offsets
are committed once both are; a batch that is re-processed takes its changes back first.

Both retry a batch whose output failed (the loop rewinds and re-processes it after a backoff); an input
whose output failed ``attempts`` times goes to the DLQ with the error as its reason, and the stream goes
on. Only a dead letter that cannot be delivered stops the consumer, with nothing committed past it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from perfwatch.consumer.batch import Batch
from perfwatch.consumer.routing import Record
from perfwatch.consumer.state import Changes
from perfwatch.consumer.watchdog import Watchdog
from perfwatch.errors import PerfwatchError

log = logging.getLogger("perfwatch.consumer")

Coords = tuple[str, int, int]
# A blocking transactional call gets its own timeout plus this before the watchdog ends the process.
DEADLINE_GRACE_S = 5.0
# Errors that belong to the record itself (its size, its topic or partition, its content): counted against
# its input. Others (purged with an aborted transaction, sequence or epoch trouble after another record
# failed) only retry the batch, so that one bad record never sends its neighbours to the DLQ. A timeout is
# not the record's either: a paused or partitioned broker times out every record in flight, and dead-lettering
# them would throw good inputs away during an outage; the batch is retried with backoff instead, and a stall
# that lasts shows on /healthz and in the lag.
_RECORD_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG, KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_TIMESTAMP,
    KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.POLICY_VIOLATION, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
})


class DeliveryFailed(PerfwatchError, RuntimeError):
    exit_code = 1  # a failure at run time, not a usage error


class OutputRetries:
    """How often each input's output failed; after ``attempts`` failures its input goes to the DLQ."""

    def __init__(self, attempts: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 5.0) -> None:
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.failures: dict[Coords, tuple[int, str]] = {}
        self.retries = 0  # batches retried in a row (reset by a commit)

    def failed(self, record: Record, err: KafkaError) -> None:
        """Count a record's failure; a dead letter that failed every try cannot go anywhere: stop."""
        if record.source is None:
            return
        n = self.failures.get(record.source, (0, ""))[0] + 1
        self.failures[record.source] = (n, str(err))
        log.warning("output for %s[%d]@%d not delivered (try %d of %d): %s", *record.source, n, self.attempts, err)
        if record.reason is not None and n >= self.attempts:
            raise DeliveryFailed(f"dead letter for {record.source} not delivered to the DLQ after {n} tries "
                                 f"({err}); stopping without committing it, the input is re-read on restart")

    def give_up(self) -> dict[Coords, str]:
        """Inputs whose output failed every try, with the last error: route them to the DLQ."""
        return {src: err for src, (n, err) in self.failures.items() if n >= self.attempts}

    def backoff(self) -> float:
        """Before re-processing a failed batch: grows with the retries in a row."""
        self.retries += 1
        return min(self.backoff_s * 2 ** (self.retries - 1), self.max_backoff_s)

    def committed(self, batch: Batch) -> None:
        self.retries = 0
        if self.failures:
            for t, p, o in list(self.failures):
                if batch.first_offsets.get((t, p), o + 1) <= o < batch.next_offsets.get((t, p), 0):
                    del self.failures[(t, p, o)]


class Delivery(Protocol):
    commits: int
    retries: OutputRetries

    def start(self) -> None:
        """Before the first batch (exactly-once: init_transactions)."""

    def emit(self, batch: Batch, records: list[Record], changes: Changes | None = None,
             changelog: list[Record] | None = None, on_commit: Callable[[], None] | None = None) -> list[Batch]:
        """Produce a batch's records and see to its commit, with its state ``changes`` (applied now) and
        their ``changelog`` records. Returns the batches to re-process: none, or, when a transaction
        aborted, every batch it held, this one included; nothing of them is visible and their changes are
        taken back. The caller rewinds to them. ``on_commit`` (the batch's metrics) runs once the batch
        counts: at-least-once at once (a re-processed batch is output, and counted, again), exactly-once
        when its transaction commits (an aborted one counts nothing)."""

    def poll(self) -> list[Batch]:
        """Serve delivery reports and commit what is acknowledged. Returns the batches to re-process (a
        record of the first failed; nothing of them or after them is committed)."""

    def pending(self) -> int:
        """Batches produced and not yet committed."""

    def drain(self, timeout: float) -> list[Batch]:
        """Wait (bounded) until every batch produced so far is committed. Returns the batches to
        re-process when one failed (as poll)."""

    def on_lost(self) -> None:
        """The partitions are gone: forget what is uncommitted, commit nothing."""


def produce_all(producer: Any, records: list[Record],
                on_delivery: Callable[[Record], Callable[[KafkaError | None, Message], None]] | None = None) -> None:
    for r in records:
        cb = on_delivery(r) if on_delivery is not None else None
        while True:
            try:
                producer.produce(r.topic, r.value, r.key, headers=r.headers, on_delivery=cb,
                                 partition=-1 if r.partition is None else r.partition)
                break
            except BufferError:  # local queue full: serve deliveries, then retry
                producer.poll(0.1)


@dataclass
class _Unacked:
    """A batch whose output records await broker acknowledgement."""

    batch: Batch
    remaining: int
    failed: list[tuple[Record, KafkaError]] = field(default_factory=list)
    changes: Changes | None = None  # applied at emit; reverted if the batch is re-processed
    changelog: list[Record] = field(default_factory=list)  # produced once the outputs are acknowledged

    def on_delivery(self, record: Record) -> Callable[[KafkaError | None, Message], None]:
        def done(err: KafkaError | None, _msg: Message) -> None:
            self.remaining -= 1
            if err is not None:
                self.failed.append((record, err))
        return done


class AtLeastOnce:
    """Offsets of acknowledged batches are committed at most every ``commit_interval_s`` from the loop,
    asynchronously (a synchronous commit cost ~14 ms of the loop's thread each, 17 % of it at the loop's
    ceiling), and synchronously on drain (revoke, shutdown). A crash re-reads at most that much more."""

    def __init__(self, producer: Any, consumer: Any, retries: OutputRetries | None = None,
                 commit_interval_s: float = 0.0) -> None:
        self.producer = producer
        self.consumer = consumer
        self.retries = retries or OutputRetries()
        self.commit_interval_s = commit_interval_s
        self._done: dict[tuple[str, int], int] = {}  # acknowledged, not yet committed
        self._committed_at = 0.0
        self.commits = 0
        self._unacked: deque[_Unacked] = deque()
        # Set once a dead letter failed for good: from then on nothing is committed on any path (main loop,
        # revoke, close), since a later batch's offsets would pass the failed record.
        self.failed: str | None = None

    def start(self) -> None:
        pass

    def emit(self, batch: Batch, records: list[Record], changes: Changes | None = None,
             changelog: list[Record] | None = None, on_commit: Callable[[], None] | None = None) -> list[Batch]:
        pending = _Unacked(batch, len(records), changes=changes, changelog=list(changelog or []))
        if changes is not None:
            changes.apply()  # the next batch reads it; a crash before its changelog record re-reads this batch
        self._unacked.append(pending)
        produce_all(self.producer, records, pending.on_delivery)
        self.producer.poll(0)
        if on_commit is not None:
            on_commit()
        return []  # a failed record shows in poll()

    def _revert(self) -> None:
        """Take back the state changes of every batch not committed, newest first."""
        for u in reversed(self._unacked):
            if u.changes is not None:
                u.changes.revert()

    def _produce_changelogs(self) -> None:
        """Produce the changelog records of the leading batches whose outputs are all acknowledged."""
        for u in self._unacked:
            if not u.changelog:
                continue
            if u.remaining > 0 or u.failed:
                break  # in batch order: a key's later state is never overwritten by an earlier one
            then, u.changelog = u.changelog, []
            u.remaining += len(then)
            produce_all(self.producer, then, u.on_delivery)

    def poll(self) -> list[Batch]:
        self.producer.poll(0)
        return self._commit_acked()

    def pending(self) -> int:
        return len(self._unacked)

    def _commit_acked(self, sync: bool = False) -> list[Batch]:
        """Commit offsets of the leading batches whose records are all acknowledged; stop at a failed one."""
        if self.failed is not None:
            raise DeliveryFailed(self.failed)
        self._produce_changelogs()
        done: dict[tuple[str, int], int] = {}
        redo: list[Batch] = []
        while self._unacked and self._unacked[0].remaining <= 0 and (
                not self._unacked[0].changelog or self._unacked[0].failed):
            u = self._unacked[0]
            if u.failed:
                try:
                    for record, err in u.failed:
                        if err.code() in _RECORD_ERRORS:
                            self.retries.failed(record, err)
                except DeliveryFailed as exc:
                    self.failed = str(exc)
                    break
                # Re-process it and everything after it (never committed): duplicates, never a loss.
                redo = [x.batch for x in self._unacked]
                self._revert()
                self._unacked.clear()
                break
            self._unacked.popleft()
            self.retries.committed(u.batch)
            done.update(u.batch.next_offsets)
        self._done.update(done)
        due = sync or time.monotonic() - self._committed_at >= self.commit_interval_s
        if self._done and due:
            offsets, self._done = self._done, {}
            self._committed_at = time.monotonic()
            try:
                self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                     asynchronous=not sync and self.commit_interval_s > 0)
                self.commits += 1
            except KafkaException as exc:
                # e.g. the partitions were revoked meanwhile: the new owner re-reads them (at-least-once)
                log.warning("commit failed: %s", exc)
        if self.failed is not None:
            raise DeliveryFailed(self.failed)
        return redo

    def drain(self, timeout: float) -> list[Batch]:
        deadline = time.monotonic() + timeout
        while self.failed is None and time.monotonic() < deadline:
            if self._unacked:
                self.producer.poll(0.05)
            try:
                if redo := self._commit_acked(sync=True):
                    return redo
            except DeliveryFailed:
                break  # the main loop raises it; a revoke or close only must not commit past it
            if not self._unacked:
                break
        return []

    def on_lost(self) -> None:
        self._revert()
        self._unacked.clear()
        self._done = {}  # another member may own them already


class ExactlyOnce:
    """Transactions that span micro-batches: a checkpoint closes the open transaction (outputs, changelog
    records and the input offsets of every batch in it) once it has been open ``checkpoint_s`` or holds
    ``checkpoint_inputs`` inputs, whichever comes first, as quix-streams' checkpoints and Kafka Streams'
    commit.interval.ms do. One commit costs a round of broker calls (~17 ms here) whatever it holds, so a
    transaction per batch capped the loop near 60 batches/s; the price of a checkpoint is latency: a
    read_committed reader sees a verdict up to ``checkpoint_s`` later. ``checkpoint_s`` 0: one per batch.

    A batch's state changes apply at once (the next batch reads them) and are taken back, newest first, if
    the transaction aborts; every batch it held is then handed back for re-processing. Every blocking
    transactional call runs under a watchdog deadline (librdkafka can block past its own timeout), and the
    retries of one transaction fit inside transaction.timeout.ms: past that the broker aborts it anyway."""

    def __init__(self, producer: Any, consumer: Any, retries: OutputRetries | None = None,
                 watchdog: Watchdog | None = None, transaction_timeout_s: float = 10.0,
                 checkpoint_s: float = 0.0, checkpoint_inputs: int = 10_000) -> None:
        self.producer = producer
        self.consumer = consumer
        self.retries = retries or OutputRetries()
        self.watchdog = watchdog
        self.transaction_timeout_s = transaction_timeout_s
        self.checkpoint_s = checkpoint_s
        self.checkpoint_inputs = checkpoint_inputs
        self.commits = 0
        self._open: list[tuple[Batch, Changes | None]] = []  # the batches of the open transaction, in order
        self._on_commit: list[Callable[[], None]] = []  # their metrics, counted once the transaction commits
        self._inputs = 0
        self._opened_at = 0.0
        self._failed: list[tuple[Record, KafkaError]] = []  # records of the open transaction that failed

    @contextmanager
    def _deadline(self, what: str, timeout: float) -> Iterator[None]:
        with self.watchdog.deadline(what, timeout + DEADLINE_GRACE_S) if self.watchdog else nullcontext():
            yield

    def start(self) -> None:
        with self._deadline("init_transactions", 30):
            self.producer.init_transactions(30)

    def _on_delivery(self, record: Record) -> Callable[[KafkaError | None, Message], None]:
        def done(err: KafkaError | None, _msg: Message) -> None:
            if err is not None and err.code() in _RECORD_ERRORS:
                self._failed.append((record, err))
        return done

    def emit(self, batch: Batch, records: list[Record], changes: Changes | None = None,
             changelog: list[Record] | None = None, on_commit: Callable[[], None] | None = None) -> list[Batch]:
        try:
            if not self._open:
                with self._deadline("begin_transaction", 5):
                    self.producer.begin_transaction()
                self._opened_at = time.monotonic()
            self._open.append((batch, changes))
            if on_commit is not None:
                self._on_commit.append(on_commit)
            self._inputs += batch.span()
            if changes is not None:
                changes.apply()
            produce_all(self.producer, records + (changelog or []), self._on_delivery)
        except KafkaException as exc:
            return self._aborted(exc)
        return self._checkpoint() if self._due() else []

    def _due(self) -> bool:
        return bool(self._open) and (time.monotonic() - self._opened_at >= self.checkpoint_s
                                     or self._inputs >= self.checkpoint_inputs)

    def _checkpoint(self) -> list[Batch]:
        """Commit the open transaction with the input offsets of every batch in it."""
        offsets: dict[tuple[str, int], int] = {}
        for b, _ in self._open:
            offsets.update(b.next_offsets)  # in order: a partition's latest batch wins
        # Every retry of this transaction ends before the broker would time it out.
        deadline = self._opened_at + 0.8 * self.transaction_timeout_s
        try:
            if offsets:  # an expiry sweep alone consumed nothing
                tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                self._retriable("send_offsets_to_transaction", lambda t: self.producer.send_offsets_to_transaction(
                    tps, self.consumer.consumer_group_metadata(), t), deadline)
            self._retriable("commit_transaction", lambda t: self.producer.commit_transaction(t), deadline)
        except KafkaException as exc:
            return self._aborted(exc)
        self.commits += 1
        for b, _ in self._open:
            self.retries.committed(b)
        counted = self._on_commit
        self._close()
        for count in counted:
            count()
        return []

    def _aborted(self, exc: KafkaException) -> list[Batch]:
        err = exc.args[0]
        # _STATE from produce(): the transaction failed meanwhile (e.g. a record was refused) and
        # takes no more records until it is aborted.
        if not (err.txn_requires_abort() or err.code() == KafkaError._STATE):
            raise exc
        log.warning("transaction aborted (%s); rewinding to re-process its %d batch(es)", err, len(self._open))
        self._abort()
        failed, redo = list(self._failed), [b for b, _ in self._open]
        self._revert()
        self._close()
        for record, rec_err in failed:
            self.retries.failed(record, rec_err)
        return redo

    def _revert(self) -> None:
        for _, changes in reversed(self._open):
            if changes is not None:
                changes.revert()

    def _close(self) -> None:
        self._open, self._inputs, self._failed, self._on_commit = [], 0, [], []

    def _abort(self, attempts: int = 20) -> None:
        """abort_transaction in short calls, serving delivery reports between them: librdkafka cannot finish
        an abort while the reports of the aborted records wait in the event queue (it times out instead)."""
        for i in range(attempts):
            self.producer.poll(0.05)
            try:
                with self._deadline("abort_transaction", 1):
                    self.producer.abort_transaction(1)
                break
            except KafkaException as exc:
                if not exc.args[0].retriable() or i == attempts - 1:
                    raise
                log.warning("abort_transaction: %s; retrying", exc.args[0])
        self.producer.poll(0)  # the reports of the aborted records

    def _retriable(self, what: str, op: Callable[[float], Any], deadline: float) -> None:
        """Retry a transactional call while Kafka says the error is retriable (e.g. the transaction
        coordinator moved to another broker) and the transaction has time left. A timed-out call goes on in
        the background (aborting now would conflict with it), so at the end one last call waits a whole
        transaction timeout for its outcome: by then the broker has aborted the transaction if it could
        not finish. Abortable and fatal errors propagate; a call still unresolved stops the consumer."""
        for i in range(1, 100):
            last = time.monotonic() >= deadline
            left = self.transaction_timeout_s if last else deadline - time.monotonic()
            try:
                with self._deadline(what, left):
                    op(left)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable():
                    raise
                if last:
                    raise DeliveryFailed(f"{what} unresolved after the transaction's time ({err}); stopping, "
                                         "a restarted consumer fences this producer") from exc
                log.warning("retriable transaction error (%s); retrying", err)
                time.sleep(min(0.1 * 2**i, 1.0, max(0.0, deadline - time.monotonic())))
        raise AssertionError("unreachable")  # pragma: no cover

    def poll(self) -> list[Batch]:
        self.producer.poll(0)
        return self._checkpoint() if self._due() else []

    def pending(self) -> int:
        return 0

    def drain(self, timeout: float) -> list[Batch]:
        return self._checkpoint() if self._open else []

    def on_lost(self) -> None:
        self._revert()
        self._close()
        try:
            self._abort()
        except KafkaException:
            pass
