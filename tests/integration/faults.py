"""Fault injection by wrapping the real confluent_kafka clients (no mocks of Kafka): each wrapper forwards
every call to the real client and changes one behaviour on cue."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


class Wrapper:
    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class HeldAcksProducer(Wrapper):
    """While ``hold`` is set, poll() serves no delivery reports: acks pile up as if the broker were slow."""

    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(Producer(conf))
        self.hold = threading.Event()

    def poll(self, timeout: float = 0) -> int:
        if self.hold.is_set():
            time.sleep(min(timeout, 0.01))
            return 0
        return int(self.real.poll(timeout))


class StallOnPauseConsumer(Wrapper):
    """The first consume() after the loop pauses partitions stalls past max.poll.interval.ms, so the group
    takes the partitions away (on_lost) and assigns them again: lose and regain while paused."""

    def __init__(self, conf: dict[str, Any], stall_s: float, on_stall_end: Any) -> None:
        super().__init__(Consumer(conf))
        self.stall_s = stall_s
        self.on_stall_end = on_stall_end
        self.paused_once = False
        self.stalled = False
        self.events: list[str] = []  # lost, assign, pause:N, resume:N in the order they happened

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        def assign(c: Any, ps: list[Any]) -> None:
            self.events.append("assign")
            on_assign(c, ps)

        def lost(c: Any, ps: list[Any]) -> None:
            self.events.append("lost")
            on_lost(c, ps)

        self.real.subscribe(topics, on_assign=assign, on_revoke=on_revoke, on_lost=lost)

    def pause(self, partitions: list[Any]) -> None:
        self.events.append(f"pause:{len(partitions)}")
        if partitions:
            self.paused_once = True
        self.real.pause(partitions)

    def resume(self, partitions: list[Any]) -> None:
        self.events.append(f"resume:{len(partitions)}")
        self.real.resume(partitions)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.paused_once and not self.stalled:
            self.stalled = True
            time.sleep(self.stall_s)
            self.on_stall_end()
            # Serve only what is queued (the loss), as when the broker is still away: the loop runs
            # before the group hands the partitions back.
            return list(self.real.consume(num_messages, 0))
        return list(self.real.consume(num_messages, timeout))


class AbortOnceProducer(Wrapper):
    """Transactional: the first commit_transaction of a transaction that produced a record for which
    ``poison(topic, value)`` holds fails with an abortable error, as when a broker refuses a write; the
    processor's abort_transaction then aborts the real transaction."""

    def __init__(self, conf: dict[str, Any], poison: Any) -> None:
        super().__init__(Producer(conf))
        self.poison = poison
        self._poisoned = False
        self.injected = 0

    def begin_transaction(self) -> None:
        self._poisoned = False
        self.real.begin_transaction()

    def produce(self, topic: str, value: Any = None, key: Any = None, **kw: Any) -> None:
        if self.poison(topic, value):
            self._poisoned = True
        self.real.produce(topic, value, key, **kw)

    def commit_transaction(self, timeout: float = -1) -> None:
        if self._poisoned and not self.injected:
            self.injected += 1
            raise KafkaException(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS, "injected: write refused",
                                            txn_requires_abort=True))
        self.real.commit_transaction(timeout)


class OversizeProducer(Wrapper):
    """Every record for which ``poison(topic, value)`` holds is sent 1.2 MB long (random, so compression
    cannot shrink it): a broker whose topic takes less refuses it, on every try."""

    def __init__(self, conf: dict[str, Any], poison: Any) -> None:
        super().__init__(Producer(conf))
        self.poison = poison

    def produce(self, topic: str, value: Any = None, key: Any = None, **kw: Any) -> None:
        if self.poison(topic, value):
            value = os.urandom(1_200_000)
        self.real.produce(topic, value, key, **kw)


class HangingOffsetsProducer(Wrapper):
    """Transactional: the ``hang_at``-th send_offsets_to_transaction blocks until ``release`` is set, as
    librdkafka does when the group coordinator dies (confluentinc/librdkafka#5456, #5511)."""

    def __init__(self, conf: dict[str, Any], hang_at: int) -> None:
        super().__init__(Producer(conf))
        self.hang_at = hang_at
        self.calls = 0
        self.release = threading.Event()

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self.calls += 1
        if self.calls == self.hang_at:
            self.release.wait()
        self.real.send_offsets_to_transaction(*args)


class RebalanceRecorder(Wrapper):
    """Records every assign, revoke and loss the group hands the loop."""

    def __init__(self, conf: dict[str, Any]) -> None:
        super().__init__(Consumer(conf))
        self.events: list[str] = []

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        def wrap(name: str, cb: Any) -> Any:
            def call(c: Any, ps: list[Any]) -> None:
                self.events.append(name)
                cb(c, ps)
            return call

        self.real.subscribe(topics, on_assign=wrap("assign", on_assign), on_revoke=wrap("revoke", on_revoke),
                            on_lost=wrap("lost", on_lost))
