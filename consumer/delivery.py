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
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
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
        """Batches emitted and not yet committed."""

    def backlog(self) -> float:
        """Output waiting, as a share of its bound: the loop pauses its partitions above 1 and resumes them
        at 0.5 (a pause drops what the client already fetched for them: too low a bound throttles)."""

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
                 commit_interval_s: float = 0.0, max_pending_batches: int = 16) -> None:
        self.producer = producer
        self.consumer = consumer
        self.retries = retries or OutputRetries()
        self.commit_interval_s = commit_interval_s
        self.max_pending_batches = max_pending_batches
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

    def backlog(self) -> float:
        return len(self._unacked) / self.max_pending_batches

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


@dataclass
class _Txn:
    """One transaction: its batches in order with their state changes, what counts them once it commits,
    and its records whose delivery failed."""

    opened_at: float
    batches: list[tuple[Batch, Changes | None]] = field(default_factory=list)
    counts: list[Callable[[], None]] = field(default_factory=list)
    failed: list[tuple[Record, KafkaError]] = field(default_factory=list)
    inputs: int = 0

    def add(self, batch: Batch, changes: Changes | None, on_commit: Callable[[], None] | None) -> None:
        self.batches.append((batch, changes))
        if on_commit is not None:
            self.counts.append(on_commit)
        self.inputs += batch.span()

    def offsets(self) -> list[TopicPartition]:
        latest: dict[tuple[str, int], int] = {}
        for b, _ in self.batches:
            latest.update(b.next_offsets)  # in order: a partition's latest batch wins
        return [TopicPartition(t, p, o) for (t, p), o in latest.items()]


@dataclass
class _Held:
    """A batch emitted while the previous transaction commits: its state applied, its records not produced."""

    batch: Batch
    records: list[Record]
    changes: Changes | None
    on_commit: Callable[[], None] | None


Committer = Callable[[Callable[[], None]], "Future[None]"]


def in_background(commit: Callable[[], None]) -> Future[None]:
    """A checkpoint's commit in a thread of its own (the Kafka calls release the GIL while they wait): a
    daemon, so that a commit librdkafka never returns from cannot keep the process from exiting."""
    done: Future[None] = Future()

    def run() -> None:
        try:
            commit()
            done.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - the loop's thread raises it at its next turn
            done.set_exception(exc)

    threading.Thread(target=run, name="perfwatch-checkpoint", daemon=True).start()
    return done


class ExactlyOnce:
    """Transactions that span micro-batches: a checkpoint closes the open transaction (outputs, changelog
    records and the input offsets of every batch in it) once it has been open ``checkpoint_s`` or holds
    ``checkpoint_inputs`` inputs, whichever comes first, as quix-streams' checkpoints and Kafka Streams'
    commit.interval.ms do. The price of a checkpoint is latency: a read_committed reader sees a verdict up to
    ``checkpoint_s`` (plus one commit) later. ``checkpoint_s`` 0: a checkpoint as often as commits allow.

    A checkpoint's commit (send_offsets_to_transaction + commit_transaction, ~25 ms of broker round trips
    here whatever it holds) runs in ``committer``'s thread while the loop goes on: Kafka takes no records
    until the commit ends, so the batches emitted meanwhile are held, their state applied, and go into the
    next transaction once it has. Blocking the loop for it instead cost a third of the loop's time at its
    ceiling (py-spy, bench/).

    A batch's state changes apply at once (the next batch reads them) and are taken back, newest first, if
    its transaction aborts; every batch not committed (the transaction's and those held behind it) is then
    handed back for re-processing. Every blocking transactional call runs under a watchdog deadline
    (librdkafka can block past its own timeout), and the retries of one transaction fit inside
    transaction.timeout.ms: past that the broker aborts it anyway. Anything but an abort that escapes (a
    fatal error, a call unresolved in time) stops it for good: see ``failed``."""

    def __init__(self, producer: Any, consumer: Any, retries: OutputRetries | None = None,
                 watchdog: Watchdog | None = None, transaction_timeout_s: float = 10.0,
                 checkpoint_s: float = 0.0, checkpoint_inputs: int = 10_000,
                 committer: Committer | None = None) -> None:
        self.producer = producer
        self.consumer = consumer
        self.retries = retries or OutputRetries()
        self.watchdog = watchdog
        self.transaction_timeout_s = transaction_timeout_s
        self.checkpoint_s = checkpoint_s
        self.checkpoint_inputs = checkpoint_inputs
        self.commits = 0
        self._committer = committer or in_background
        # Set when anything but an abort escaped: the open, closing and held batches are then in no known
        # state, so nothing more is produced or committed on any path (the revoke at close included) and
        # the next owner of the partitions re-reads from the last commit.
        self.failed: str | None = None
        self._open: _Txn | None = None  # begun, taking records
        self._closing: _Txn | None = None  # its commit in flight (then nothing is open) …
        self._commit: Future[None] | None = None
        self._held: deque[_Held] = deque()  # … and the batches emitted meanwhile, oldest first
        self._held_inputs = 0

    @contextmanager
    def _deadline(self, what: str, timeout: float) -> Iterator[None]:
        with self.watchdog.deadline(what, timeout + DEADLINE_GRACE_S) if self.watchdog else nullcontext():
            yield

    def start(self) -> None:
        with self._deadline("init_transactions", 30):
            self.producer.init_transactions(30)

    @contextmanager
    def _latched(self) -> Iterator[None]:
        try:
            yield
        except BaseException as exc:
            self.failed = self.failed or f"{type(exc).__name__}: {exc}"
            raise

    def emit(self, batch: Batch, records: list[Record], changes: Changes | None = None,
             changelog: list[Record] | None = None, on_commit: Callable[[], None] | None = None) -> list[Batch]:
        if self.failed:
            return []
        with self._latched():
            return self._emit(batch, records, changes, changelog, on_commit)

    def _emit(self, batch: Batch, records: list[Record], changes: Changes | None,
              changelog: list[Record] | None, on_commit: Callable[[], None] | None) -> list[Batch]:
        if redo := self._settle(wait=False):
            return [*redo, batch]  # it was routed over state just taken back; its own was never applied
        out = records + (changelog or [])
        if self._commit is not None:
            if changes is not None:
                changes.apply()
            self._held.append(_Held(batch, out, changes, on_commit))
            self._held_inputs += batch.span()
            return []
        if redo := self._produce(batch, out, changes, on_commit, apply=True):
            return redo
        return self._checkpoint_if_due()

    def _produce(self, batch: Batch, records: list[Record], changes: Changes | None,
                 on_commit: Callable[[], None] | None, apply: bool) -> list[Batch]:
        begin = self._open is None
        txn = self._open = self._open or _Txn(time.monotonic())
        txn.add(batch, changes, on_commit)  # first: whatever fails below, the batch is handed back
        if apply and changes is not None:
            changes.apply()
        try:
            if begin:
                with self._deadline("begin_transaction", 5):
                    self.producer.begin_transaction()
            produce_all(self.producer, records, self._on_delivery(txn.failed))
        except KafkaException as exc:
            return self._aborted(exc)
        return []

    @staticmethod
    def _on_delivery(failed: list[tuple[Record, KafkaError]],
                     ) -> Callable[[Record], Callable[[KafkaError | None, Message], None]]:
        # Bound to its own transaction's list: a report may come while the next transaction is open.
        def for_record(record: Record) -> Callable[[KafkaError | None, Message], None]:
            def done(err: KafkaError | None, _msg: Message) -> None:
                if err is not None and err.code() in _RECORD_ERRORS:
                    failed.append((record, err))
            return done
        return for_record

    def _checkpoint_if_due(self) -> list[Batch]:
        txn = self._open
        if self._commit is not None or txn is None or not (
                time.monotonic() - txn.opened_at >= self.checkpoint_s or txn.inputs >= self.checkpoint_inputs):
            return []
        self._start_commit()
        return self._settle(wait=False)  # a committer that runs inline has finished already

    def _start_commit(self) -> None:
        """Hand the open transaction to the committer with the input offsets of every batch in it."""
        txn, self._open = self._open, None
        assert txn is not None  # noqa: S101 - callers check
        self._closing = txn
        tps = txn.offsets()  # none: an expiry sweep alone consumed nothing
        meta = self.consumer.consumer_group_metadata() if tps else None
        # Every retry of this transaction ends before the broker would time it out.
        deadline = txn.opened_at + 0.8 * self.transaction_timeout_s

        def commit() -> None:
            if tps:
                self._retriable("send_offsets_to_transaction", lambda t: self.producer.send_offsets_to_transaction(
                    tps, meta, t), deadline)
            self._retriable("commit_transaction", lambda t: self.producer.commit_transaction(t), deadline)

        self._commit = self._committer(commit)

    def _settle(self, wait: bool) -> list[Batch]:
        """The outcome of the commit in flight, once it has one (``wait``: wait for it): count what it held
        and open the next transaction with the batches held meanwhile; or, aborted, every batch to redo."""
        commit = self._commit
        if commit is None or not (wait or commit.done()):
            return []
        self._commit = None
        try:
            commit.result()
        except KafkaException as exc:
            return self._aborted(exc)
        self._committed()
        while self._held:
            held = self._held.popleft()
            self._held_inputs -= held.batch.span()
            if redo := self._produce(held.batch, held.records, held.changes, held.on_commit, apply=False):
                return redo
        return []

    def _committed(self) -> None:
        txn, self._closing = self._closing, None
        assert txn is not None  # noqa: S101 - set with the commit
        self.commits += 1
        for b, _ in txn.batches:
            self.retries.committed(b)
        for count in txn.counts:
            count()

    def _aborted(self, exc: KafkaException) -> list[Batch]:
        err = exc.args[0]
        # _STATE from produce(): the transaction failed meanwhile (e.g. a record was refused) and
        # takes no more records until it is aborted.
        if not (err.txn_requires_abort() or err.code() == KafkaError._STATE):
            raise exc
        self._abort()  # first: it serves the delivery reports that say which record failed
        redo, failed = self._forget()
        log.warning("transaction aborted (%s); rewinding to re-process %d batch(es)", err, len(redo))
        for record, rec_err in failed:
            self.retries.failed(record, rec_err)
        return redo

    def _forget(self) -> tuple[list[Batch], list[tuple[Record, KafkaError]]]:
        """Take back every batch not committed, newest first, and its state; the batches oldest first, and
        the records that failed in them."""
        txn = self._closing or self._open
        for held in reversed(self._held):
            if held.changes is not None:
                held.changes.revert()
        if txn is not None:
            for _, changes in reversed(txn.batches):
                if changes is not None:
                    changes.revert()
        redo = ([b for b, _ in txn.batches] if txn else []) + [h.batch for h in self._held]
        failed = list(txn.failed) if txn else []
        self._open, self._closing, self._held, self._held_inputs = None, None, deque(), 0
        return redo, failed

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
        if self.failed:
            return []
        with self._latched():
            if redo := self._settle(wait=False):
                return redo
            return self._checkpoint_if_due()

    def pending(self) -> int:
        """Batches held behind a commit in flight."""
        return len(self._held)

    def backlog(self) -> float:
        """Inputs held behind a commit in flight, against ``checkpoint_inputs``: only a commit that stalls
        fills it (a bound in batches paused the loop through every slow commit at its ceiling)."""
        return self._held_inputs / self.checkpoint_inputs

    def drain(self, timeout: float) -> list[Batch]:
        """Commit everything emitted so far before returning (revoke, shutdown)."""
        if self.failed:
            return []
        with self._latched():
            if redo := self._settle(wait=True):
                return redo
            if self._open is None:
                return []
            self._start_commit()
            return self._settle(wait=True)

    def on_lost(self) -> None:
        """The partitions are gone: a commit in flight ends as it ends; nothing else is committed."""
        commit, self._commit = self._commit, None
        with self._latched():
            if commit is not None:
                try:
                    commit.result()
                except KafkaException:
                    pass
                else:
                    self._committed()  # before the loss was seen: its batches are done
            self._forget()
            try:
                self._abort()
            except KafkaException:
                pass
