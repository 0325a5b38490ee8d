"""How a batch's output records reach Kafka and its input offsets get committed: two strategies behind
one small interface, so the loop never branches on the guarantee.

at-least-once: a batch's offsets are committed once every record it produced is acknowledged.
exactly-once: one transaction per batch with send_offsets_to_transaction; readers use read_committed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from consumer.batch import Batch
from consumer.routing import Record

log = logging.getLogger("perfwatch.consumer")


class DeliveryFailed(RuntimeError):
    pass


class Delivery(Protocol):
    commits: int

    def start(self) -> None:
        """Before the first batch (exactly-once: init_transactions)."""

    def emit(self, batch: Batch, records: list[Record]) -> bool:
        """Produce a batch's records and see to its commit. False: the batch was aborted and nothing of it
        is visible; the caller rewinds to it."""

    def poll(self) -> None:
        """Serve delivery reports and commit what is acknowledged."""

    def pending(self) -> int:
        """Batches produced and not yet committed."""

    def drain(self, timeout: float) -> None:
        """Wait (bounded) until every batch produced so far is committed."""

    def on_lost(self) -> None:
        """The partitions are gone: forget what is uncommitted, commit nothing."""


def produce_all(producer: Any, records: list[Record], on_delivery: Callable[..., None] | None = None) -> None:
    for r in records:
        while True:
            try:
                producer.produce(r.topic, r.value, r.key, headers=r.headers, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: serve deliveries, then retry
                producer.poll(0.1)


@dataclass
class _Unacked:
    """A batch whose output records await broker acknowledgement."""

    batch: Batch
    remaining: int
    error: KafkaError | None = None

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        self.remaining -= 1
        if err is not None and self.error is None:
            self.error = err


class AtLeastOnce:
    def __init__(self, producer: Any, consumer: Any) -> None:
        self.producer = producer
        self.consumer = consumer
        self.commits = 0
        self._unacked: deque[_Unacked] = deque()
        # Set once a batch's output failed for good: from then on nothing is committed on any path (main
        # loop, revoke, close), since a later batch's offsets would pass the failed record.
        self.failed: str | None = None

    def start(self) -> None:
        pass

    def emit(self, batch: Batch, records: list[Record]) -> bool:
        pending = _Unacked(batch, len(records))
        self._unacked.append(pending)
        produce_all(self.producer, records, pending.on_delivery)
        self.producer.poll(0)
        return True

    def poll(self) -> None:
        self.producer.poll(0)
        self._commit_acked()

    def pending(self) -> int:
        return len(self._unacked)

    def _commit_acked(self) -> None:
        """Commit offsets of the leading batches whose records are all acknowledged."""
        if self.failed is not None:
            raise DeliveryFailed(self.failed)
        done: dict[tuple[str, int], int] = {}
        while self._unacked and self._unacked[0].remaining <= 0:
            u = self._unacked[0]
            if u.error is not None:
                self.failed = (f"output not delivered ({u.error}); stopping without committing, the batch "
                               "will be re-read on restart")
                break
            self._unacked.popleft()
            done.update(u.batch.next_offsets)
        if done:
            try:
                self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()],
                                     asynchronous=False)
                self.commits += 1
            except KafkaException as exc:
                # e.g. the partitions were revoked meanwhile: the new owner re-reads them (at-least-once)
                log.warning("commit failed: %s", exc)
        if self.failed is not None:
            raise DeliveryFailed(self.failed)

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._unacked and self.failed is None and time.monotonic() < deadline:
            self.producer.poll(0.05)
            try:
                self._commit_acked()
            except DeliveryFailed:
                break  # the main loop raises it; a revoke or close only must not commit past it

    def on_lost(self) -> None:
        self._unacked.clear()


class ExactlyOnce:
    def __init__(self, producer: Any, consumer: Any) -> None:
        self.producer = producer
        self.consumer = consumer
        self.commits = 0

    def start(self) -> None:
        self.producer.init_transactions(30)

    def emit(self, batch: Batch, records: list[Record]) -> bool:
        try:
            self.producer.begin_transaction()
            produce_all(self.producer, records)
            self._retriable(lambda: self.producer.send_offsets_to_transaction(
                batch.offsets(), self.consumer.consumer_group_metadata(), 30))
            self._retriable(lambda: self.producer.commit_transaction(60))
            self.commits += 1
            return True
        except KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort():
                log.warning("transaction aborted (%s); rewinding to re-process the batch", err)
                self.producer.abort_transaction(30)
                return False
            raise

    @staticmethod
    def _retriable(op: Callable[[], Any], attempts: int = 12) -> None:
        """Retry a transactional call while Kafka says the error is retriable (e.g. the transaction
        coordinator moved to another broker); abortable and fatal errors propagate."""
        for i in range(attempts):
            try:
                op()
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or i == attempts - 1:
                    raise
                log.warning("retriable transaction error (%s); retrying", exc.args[0])
                time.sleep(min(0.2 * 2**i, 5.0))

    def poll(self) -> None:
        self.producer.poll(0)

    def pending(self) -> int:
        return 0

    def drain(self, timeout: float) -> None:
        pass

    def on_lost(self) -> None:
        try:
            self.producer.abort_transaction(10)
        except KafkaException:
            pass
