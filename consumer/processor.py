"""The consume loop. One thread owns every Kafka call. Consumed messages form a micro-batch, handed to
inference when it is full, when its first message has waited max_wait, or when no batch is in inference.
ONNX Runtime runs batches in worker threads (it releases the GIL) while the main thread consumes, decodes
and tokenizes the next batch and produces and commits finished ones, always in the order consumed.

at-least-once: a batch's offsets are committed once every record it produced is acknowledged.
exactly-once: one transaction per batch with send_offsets_to_transaction; readers use read_committed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from perfwatch.consumer.batch import Batch, coords, message_time, prepare
from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.metrics import Metrics
from perfwatch.consumer.routing import Record, route
from perfwatch.errors import PerfwatchError
from perfwatch.runtime.model import BundleModel, Encoded
from perfwatch.settings import ConsumerSettings
from perfwatch.verdict import ModelRef

log = logging.getLogger("perfwatch.consumer")

# How long the loop waits on a batch in inference before it looks for new messages for an idle worker.
_WAIT_SLICE_S = 0.005
# No split part smaller than this: per-sample cost rises steeply below it (int8, 1 thread).
_MIN_SPLIT = 16


class DeliveryFailed(PerfwatchError, RuntimeError):
    exit_code = 1  # a failure at run time, not a usage error


@dataclass
class _Unacked:
    """A batch whose output records await broker acknowledgement (at-least-once)."""

    batch: Batch
    remaining: int
    error: KafkaError | None = None

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        self.remaining -= 1
        if err is not None and self.error is None:
            self.error = err


@dataclass
class _InFlight:
    """A batch in inference, its rows on one or more workers."""

    batch: Batch
    parts: list[Future[np.ndarray]]

    def done(self) -> bool:
        return all(f.done() for f in self.parts)

    def unfinished(self) -> int:
        return sum(not f.done() for f in self.parts)

    def result(self) -> np.ndarray:
        return np.concatenate([f.result() for f in self.parts])

    def abandon(self) -> None:
        for f in self.parts:
            if not f.cancel():
                f.result()  # running: let ORT finish with it; its result is dropped


@dataclass
class Stats:
    consumed: int = 0
    verdicts: int = 0
    dlq: int = 0
    alerts: int = 0
    batches: int = 0
    inference_s: float = 0.0
    commits: int = 0
    labels: dict[str, int] = field(default_factory=dict)


class StreamProcessor:
    def __init__(self, settings: ConsumerSettings, model: BundleModel | None = None,
                 metrics: Metrics | None = None) -> None:
        self.s = settings
        self.workers, threads = settings.inference_plan()
        self.model = model or BundleModel(settings.bundle, settings.precision, threads)
        self.model_ref = ModelRef(id=self.model.model_id, sha256=self.model.manifest.sha256)
        self.metrics = metrics or Metrics()
        self.hysteresis = Hysteresis.parse(settings.hysteresis) if settings.hysteresis else None
        self.eos = settings.guarantee == "exactly-once"
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # set once partitions are assigned (tests and health checks wait on it)
        self._unacked: deque[_Unacked] = deque()
        self._inflight: deque[_InFlight] = deque()  # oldest first
        self._stats_lock = threading.Lock()  # workers add their inference time
        self._forming: list[Message] = []  # consumed, not yet handed to inference
        self._forming_since = 0.0
        self._paused = False
        self._assigned = False
        # One ORT session, several concurrent run() calls: the session is thread-safe and shares the weights.
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="perfwatch-infer")
        conn = settings.kafka_config()
        self.consumer = Consumer({
            **conn, "group.id": settings.group_id, "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": settings.auto_offset_reset, "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000, "max.poll.interval.ms": 300_000,
            "fetch.message.max.bytes": max(1_048_576, settings.max_message_bytes * 4),
            "error_cb": self._on_client_error,
        })
        producer_conf: dict[str, Any] = {
            **conn, "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
            "message.max.bytes": 2_000_000, "error_cb": self._on_client_error,
        }
        if self.eos:
            # A stable --transactional-id lets a restarted instance fence its crashed predecessor at once.
            # Otherwise the id is unique and a crashed process's open transaction is aborted by the broker
            # after transaction.timeout.ms: kept short, since a transaction spans only produce + commit
            # (inference runs before it begins); until then read_committed readers wait at that offset.
            producer_conf["transactional.id"] = settings.transactional_id or (
                f"perfwatch-{settings.group_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            producer_conf["transaction.timeout.ms"] = 10_000
        self.producer = Producer(producer_conf)
        self._last_lag = 0.0

    # -- Kafka callbacks ----------------------------------------------------------------------------
    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("fatal Kafka error: %s", err)
            self.stop_event.set()
        elif err.code() == KafkaError._AUTHENTICATION:
            log.warning("Kafka: %s", err)
        else:  # outages: perfwatch.kafkalog says "broker down" / "broker back" once each
            log.debug("Kafka: %s", err)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        if self.hysteresis is not None and partitions:
            self._restore_alert_state()
        self._assigned = bool(consumer.assignment()) or bool(partitions)
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what is done for the revoked partitions: finish the batches in hand, then commit.
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._finish_all()
        self._drain_acks(timeout=30.0)
        revoked = {(p.topic, p.partition) for p in partitions}
        remaining = {(p.topic, p.partition) for p in consumer.assignment()} - revoked
        self._assigned = bool(remaining)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may own them already. Drop the work, commit nothing.
        log.warning("lost %s; dropping the batches in hand", partitions)
        self._drop_all()
        if self.eos:
            try:
                self.producer.abort_transaction(10)
            except KafkaException:
                pass
        self._unacked.clear()
        self._assigned = False

    # -- lifecycle -----------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the batch in hand, commit, leave the group. A second Ctrl+C exits at once."""
        def handler(signum: int, _frame: object) -> None:
            if self.stop_event.is_set() and signum == signal.SIGINT:
                os._exit(130)
            log.info("signal %s: finishing the batch in hand, then leaving the group", signum)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self, max_idle_s: float | None = None) -> Stats:
        """Process until stopped (or until ``max_idle_s`` without messages, for bounded runs)."""
        if self.s.metrics_port is not None:
            self.metrics.serve(self.s.metrics_port)
        if self.eos:
            self.producer.init_transactions(30)
        self.consumer.subscribe([self.s.samples_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)
        idle_since = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if not self._assigned:  # waiting for the group (e.g. a dead member's session to expire)
                    idle_since = time.monotonic()
                if self._fill():  # batch N+1 goes into inference …
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s \
                        and not (self._forming or self._inflight or self._unacked):
                    break
                self._emit_finished()  # … while this thread produces and commits batch N
                self.producer.poll(0)
                self._commit_acked()
                self._backpressure()
                self._update_lag()
            self._finish_all()
            self._drain_acks(timeout=60.0)
        finally:
            self._executor.shutdown(wait=True)
            self.consumer.close()  # leaves the group
            self.producer.flush(10)
        return self.stats

    # -- the pipeline --------------------------------------------------------------------------------
    def _is_error(self, m: Message) -> bool:
        err = m.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consume error on %s[%s]: %s", m.topic(), m.partition(), err)
        return True

    def _forming_age(self) -> float:
        return time.monotonic() - self._forming_since if self._forming else 0.0

    def _fill(self) -> bool:
        """Consume into the forming batch and hand it to inference when it is due. True if messages came."""
        if self._busy() > self.workers:  # every worker busy and work queued behind them
            return False
        max_wait = self.s.max_wait_ms / 1000
        # With batches in inference, take only what is already fetched: blocking here would hold back
        # the emit of finished batches.
        wait = 0.0 if self._inflight else max(0.0, max_wait - self._forming_age())
        msgs = [m for m in self.consumer.consume(self.s.batch_size - len(self._forming), wait)
                if not self._is_error(m)]
        if msgs and not self._forming:
            self._forming_since = time.monotonic()
        self._forming.extend(msgs)
        if self._forming and (len(self._forming) >= self.s.batch_size or not self._inflight
                              or self._forming_age() >= max_wait):
            self._dispatch()
        return bool(msgs)

    def _busy(self) -> int:
        """Inference work handed out and not finished (running or queued), in worker-sized parts."""
        return sum(x.unfinished() for x in self._inflight)

    def _dispatch(self) -> None:
        msgs, self._forming = self._forming, []
        self._submit(prepare(msgs, self.model, self.s.max_message_bytes, self.s.mem_total_gb))

    def _emit_finished(self) -> None:
        """Emit finished batches, oldest first. Until the oldest is done, sleep until a worker frees up,
        or until there may be work for an idle one: soon (new messages start at once), or when the
        forming batch is due (every worker busy: it only needs to be queued by then)."""
        if self._inflight and not self._inflight[0].done():
            busy = self._busy()
            due = self.s.max_wait_ms / 1000 - self._forming_age()
            timeout = None if busy > self.workers else max(0.0, due if busy == self.workers else
                                                           min(due, _WAIT_SLICE_S))
            wait_futures([f for x in self._inflight for f in x.parts if not f.done()], timeout,
                         return_when=FIRST_COMPLETED)
        while self._inflight and self._inflight[0].done():
            self._emit(*self._collect_oldest())

    def _submit(self, batch: Batch) -> None:
        """Hand a batch to inference, its rows split across the idle workers: a backlog that built up while
        they were busy is then done in parallel, instead of one worker taking it all while the others (and
        every batch behind it, since emits keep order) wait. Saturated, no worker is idle at dispatch (work
        is always queued), so full batches stay whole. Either way the batch is emitted and committed as one."""
        self.stats.consumed += len(batch)
        self.metrics.samples.inc(len(batch))
        self.metrics.batch_size.observe(len(batch))
        parts: list[Future[np.ndarray]]
        if batch.encoded is None:
            done: Future[np.ndarray] = Future()
            done.set_result(np.zeros((0, len(self.model.labels))))
            parts = [done]
        else:
            idle = self.workers - self._busy()
            n = max(1, min(idle, len(batch.encoded) // _MIN_SPLIT))
            parts = [self._executor.submit(self._infer, enc) for enc in batch.encoded.split(n)]
        self._inflight.append(_InFlight(batch, parts))

    def _infer(self, enc: Encoded) -> np.ndarray:
        t0 = time.perf_counter()
        probs = self.model.run(enc)
        dt = time.perf_counter() - t0
        self.metrics.inference.observe(dt)
        with self._stats_lock:
            self.stats.inference_s += dt
        return probs

    def _collect_oldest(self) -> tuple[Batch, np.ndarray]:
        """Wait for the oldest batch in inference and hand it back with its probabilities."""
        x = self._inflight.popleft()
        return x.batch, x.result()

    def _finish_all(self) -> None:
        """Infer and emit everything consumed so far, in order (on revoke and at shutdown)."""
        if self._forming:
            self._dispatch()
        while self._inflight:
            self._emit(*self._collect_oldest())

    def _drop_all(self) -> dict[tuple[str, int], int]:
        """Forget every message in hand (its partitions are gone, or a transaction aborted); returns the
        earliest dropped offset per partition."""
        first: dict[tuple[str, int], int] = {}
        while self._inflight:
            x = self._inflight.popleft()
            x.abandon()
            for tp, off in x.batch.first_offsets.items():
                first[tp] = min(first.get(tp, off), off)
        for m in self._forming:
            topic, part, off = coords(m)
            first[(topic, part)] = min(first.get((topic, part), off), off)
        self._forming = []
        return first

    def _emit(self, batch: Batch, probs: np.ndarray) -> None:
        records, verdicts = route(
            batch, probs, self.model.labels, self.model_ref, predictions_topic=self.s.predictions_topic,
            alerts_topic=self.s.alerts_topic, dlq_topic=self.s.dlq_topic, emit_predictions=self.s.emit_predictions,
            hysteresis=self.hysteresis, dlq_max_bytes=min(self.s.max_message_bytes * 4, 1_000_000),
        )
        if self.eos:
            self._emit_transaction(batch, records)
        else:
            self._emit_at_least_once(batch, records)
        self._account(batch, records, verdicts)

    def _produce(self, records: list[Record], on_delivery: Any = None) -> None:
        for r in records:
            while True:
                try:
                    self.producer.produce(r.topic, r.value, r.key, headers=r.headers, on_delivery=on_delivery)
                    break
                except BufferError:  # local queue full: serve deliveries, then retry
                    self.producer.poll(0.1)

    def _emit_at_least_once(self, batch: Batch, records: list[Record]) -> None:
        pending = _Unacked(batch, len(records))
        self._unacked.append(pending)
        self._produce(records, pending.on_delivery)
        self.producer.poll(0)

    def _emit_transaction(self, batch: Batch, records: list[Record]) -> None:
        try:
            self.producer.begin_transaction()
            self._produce(records)
            self._retriable(lambda: self.producer.send_offsets_to_transaction(
                batch.offsets(), self.consumer.consumer_group_metadata(), 30))
            self._retriable(lambda: self.producer.commit_transaction(60))
            self.stats.commits += 1
        except KafkaException as exc:
            err = exc.args[0]
            if err.txn_requires_abort():
                log.warning("transaction aborted (%s); rewinding to re-process the batch", err)
                self.producer.abort_transaction(30)
                self._rewind(batch)
            else:
                raise

    def _rewind(self, batch: Batch) -> None:
        """After an aborted transaction: drop the batches consumed after this one and seek every
        partition back to the earliest offset not yet committed."""
        rewind = self._drop_all()
        for tp, off in batch.first_offsets.items():
            rewind[tp] = min(rewind.get(tp, off), off)
        for (topic, part), off in rewind.items():
            self.consumer.seek(TopicPartition(topic, part, off))

    @staticmethod
    def _retriable(op: Any, attempts: int = 12) -> None:
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

    def _commit_acked(self) -> None:
        """Commit offsets of the leading batches whose records are all acknowledged."""
        done: dict[tuple[str, int], int] = {}
        while self._unacked and self._unacked[0].remaining <= 0:
            u = self._unacked.popleft()
            if u.error is not None:
                raise DeliveryFailed(f"output not delivered ({u.error}); stopping without committing, "
                                     "the batch will be re-read on restart")
            done.update(u.batch.next_offsets)
        if done:
            try:
                self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in done.items()],
                                     asynchronous=False)
                self.stats.commits += 1
            except KafkaException as exc:
                # e.g. the partitions were revoked meanwhile: the new owner re-reads them (at-least-once)
                log.warning("commit failed: %s", exc)

    def _drain_acks(self, timeout: float) -> None:
        if self.eos:
            return
        deadline = time.monotonic() + timeout
        while self._unacked and time.monotonic() < deadline:
            self.producer.poll(0.05)
            self._commit_acked()

    def _backpressure(self) -> None:
        """Pause the assigned partitions while too many batches wait for acks; resume when half drained."""
        n = len(self._unacked)
        if not self._paused and n > self.s.max_pending_batches:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
            self.metrics.paused.set(1)
        elif self._paused and n <= self.s.max_pending_batches // 2:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
            self.metrics.paused.set(0)

    def _account(self, batch: Batch, records: list[Record], verdicts: list[Any]) -> None:
        self.stats.batches += 1
        self.stats.verdicts += len(verdicts)
        self.stats.dlq += len(batch.invalid)
        now = time.time()
        for v in verdicts:
            self.metrics.verdicts.labels(v.label).inc()
            self.stats.labels[v.label] = self.stats.labels.get(v.label, 0) + 1
        for msg, exc in batch.invalid:
            self.metrics.dlq.labels(exc.reason).inc()
            log.info("DLQ %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
        for r in records:
            if r.state is not None:
                self.stats.alerts += 1
                self.metrics.alerts.labels(r.state).inc()
        for msg, _ in batch.valid:
            if (t := message_time(msg)) is not None:
                self.metrics.latency.observe(max(0.0, now - t.timestamp()))

    def _update_lag(self) -> None:
        if time.monotonic() - self._last_lag < 5:
            return
        self._last_lag = time.monotonic()
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                _, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.lag.labels(str(tp.partition)).set(max(0, high - tp.offset))
        except KafkaException:
            pass

    def _restore_alert_state(self) -> None:
        """Rebuild firing/resolved per key from the alerts topic, so a rebalance never re-fires."""
        from perfwatch.kafkaio import read_topic
        from perfwatch.verdict import Alert

        assert self.hysteresis is not None  # noqa: S101
        conf = {**self.s.kafka_config()}
        try:
            for m in read_topic(conf, self.s.alerts_topic, idle_s=0.5, max_s=10, read_committed=True):
                a = Alert.model_validate_json(m.value() or b"{}")
                if a.state is not None:
                    self.hysteresis.restore(f"{a.run_id}/{a.host}", a.state)
        except (KafkaException, KeyError, ValueError) as exc:
            log.warning("could not restore alert state from %s: %s", self.s.alerts_topic, exc)
