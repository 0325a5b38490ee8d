"""Deterministic stand-ins for the Kafka clients in unit tests of the consumer's pieces (never used against
a broker: integration tests run the real clients)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message


@dataclass
class FakeProducer:
    """Queues each produce; poll() acknowledges them, failing those for which ``fail(topic, value)`` gives an
    error code. Transactions: commit_transaction raises an abortable error when a record failed."""

    fail: Callable[[str, bytes], int | None] = lambda _t, _v: None
    produced: list[tuple[str, bytes]] = field(default_factory=list)
    committed_txns: list[list[tuple[str, bytes]]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    sent_offsets: list[dict[tuple[str, int], int]] = field(default_factory=list)
    _queue: list[tuple[str, bytes, Any]] = field(default_factory=list)
    _txn: list[tuple[str, bytes]] | None = None
    _txn_failed: bool = False

    def produce(self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None,
                on_delivery: Any = None, partition: int = -1) -> None:
        self.produced.append((topic, value))
        self._queue.append((topic, value, on_delivery))
        if self._txn is not None:
            self._txn.append((topic, value))

    def poll(self, _timeout: float = 0) -> int:
        queue, self._queue = self._queue, []
        for topic, value, cb in queue:
            code = self.fail(topic, value)
            if code is not None:
                self._txn_failed = True
            if cb is not None:
                cb(None if code is None else KafkaError(code), Message(topic=topic, value=value))
        return len(queue)

    def flush(self, _timeout: float = 0) -> int:
        self.poll()
        return 0

    def init_transactions(self, _timeout: float) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")
        self._txn, self._txn_failed = [], False

    def send_offsets_to_transaction(self, offsets: Any, _meta: Any, _timeout: float) -> None:
        self.calls.append("send_offsets")
        self.sent_offsets.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def commit_transaction(self, _timeout: float) -> None:
        self.poll()
        if self._txn_failed:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "a record failed",
                                            txn_requires_abort=True))
        self.calls.append("commit")
        assert self._txn is not None  # noqa: S101
        self.committed_txns.append(self._txn)
        self._txn = None

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")
        self._txn = None


@dataclass
class FakeConsumer:
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)
    asynchronous: list[bool] = field(default_factory=list)

    def commit(self, offsets: Any, asynchronous: bool = True) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        self.asynchronous.append(asynchronous)

    def consumer_group_metadata(self) -> object:
        return object()


def inline(commit: Callable[[], None]) -> Future[None]:
    """A committer that commits at once in the caller's thread: the checkpoint's outcome is known on return."""
    done: Future[None] = Future()
    try:
        commit()
        done.set_result(None)
    except Exception as exc:  # noqa: BLE001 - handed over as the commit's outcome
        done.set_exception(exc)
    return done


@dataclass
class HeldCommitter:
    """A committer whose commits stay in flight until release(): what the loop does meanwhile, step by step."""

    waiting: list[tuple[Callable[[], None], Future[None]]] = field(default_factory=list)

    def __call__(self, commit: Callable[[], None]) -> Future[None]:
        self.waiting.append((commit, Future()))
        return self.waiting[-1][1]

    def release(self) -> None:
        waiting, self.waiting = self.waiting, []
        for commit, done in waiting:
            outcome = inline(commit)
            exc = outcome.exception()
            done.set_exception(exc) if exc is not None else done.set_result(None)
