"""The consume loop and its rebalance callbacks. One thread owns every Kafka call. Consumed messages form a
micro-batch, handed to inference when it is full, when its first message has waited max_wait, or when no
batch is in inference. The inference pool (consumer/inference.py) runs batches in worker threads while this
thread consumes, decodes and tokenizes the next batch, and hands finished ones, always in the order
consumed, to the delivery strategy (consumer/delivery.py) that produces and commits them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from perfwatch.consumer import changelog
from perfwatch.consumer.batch import Batch, coords, prepare
from perfwatch.consumer.clients import TRANSACTION_TIMEOUT_MS, consumer_config, producer_config
from perfwatch.consumer.delivery import AtLeastOnce, Delivery, DeliveryFailed, ExactlyOnce, OutputRetries
from perfwatch.consumer.heap import steady_heap
from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.inference import InferencePool
from perfwatch.consumer.metrics import Metrics
from perfwatch.consumer.response_cache import ResponseCache
from perfwatch.consumer.routing import Record, expiry_alerts, route
from perfwatch.consumer.state import StateStore
from perfwatch.consumer.watchdog import Watchdog
from perfwatch.runtime.model import BundleModel
from perfwatch.settings import ConsumerSettings
from perfwatch.verdict import ModelRef

__all__ = ["DeliveryFailed", "Stats", "StreamProcessor"]

log = logging.getLogger("perfwatch.consumer")

# How long the loop waits on a batch in inference before it looks for new messages for an idle worker.
_WAIT_SLICE_S = 0.005
# Most idle keys expired in one batch (each is a tombstone, and maybe a `resolved`).
_SWEEP_LIMIT = 10_000


@dataclass
class Stats:
    consumed: int = 0
    verdicts: int = 0
    dlq: int = 0
    alerts: int = 0
    batches: int = 0
    inference_s: float = 0.0
    commits: int = 0
    cache_hits: int = 0
    cache_lookups: int = 0
    labels: dict[str, int] = field(default_factory=dict)


class StreamProcessor:
    def __init__(self, settings: ConsumerSettings, model: BundleModel | None = None,
                 metrics: Metrics | None = None, *, consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
                 producer_factory: Callable[[dict[str, Any]], Any] = Producer) -> None:
        """The factories build the Kafka clients from their config (tests wrap the real ones to inject faults)."""
        self.s = settings
        self.workers, threads = settings.inference_plan()
        self.model = model or BundleModel(settings.bundle, settings.precision, threads)
        self.model_ref = ModelRef(id=self.model.model_id, sha256=self.model.manifest.sha256)
        self.metrics = metrics or Metrics()
        self.hysteresis = Hysteresis.parse(settings.hysteresis) if settings.hysteresis else None
        # Hysteresis state per assigned partition, backed by a compacted changelog (consumer/state.py).
        self.state = StateStore() if self.hysteresis is not None else None
        self._next_sweep = 0.0
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # set once partitions are assigned (tests and health checks wait on it)
        self.cache = ResponseCache(len(self.model.labels)) if settings.response_cache else None
        if self.cache is not None:
            self.metrics.cache_bytes.set(self.cache.nbytes)
        self.pool = InferencePool(self.model, self.workers, on_run=self.metrics.inference.observe)
        self._forming: list[Message] = []  # consumed, not yet handed to inference
        self._forming_since = 0.0
        self._paused = False
        self._assigned = False
        self.consumer = consumer_factory(consumer_config(settings, self._on_client_error))
        self.producer = producer_factory(producer_config(settings, self._on_client_error))
        retries = OutputRetries(settings.output_attempts)
        self.watchdog: Watchdog | None = None
        self.delivery: Delivery
        if settings.guarantee == "exactly-once":
            self.watchdog = Watchdog()
            self.delivery = ExactlyOnce(self.producer, self.consumer, retries, self.watchdog,
                                        TRANSACTION_TIMEOUT_MS / 1000, checkpoint_s=settings.checkpoint_ms / 1000,
                                        checkpoint_inputs=settings.checkpoint_inputs)
        else:
            self.delivery = AtLeastOnce(self.producer, self.consumer, retries, settings.checkpoint_ms / 1000,
                                        settings.max_pending_batches)
        self._last_lag = 0.0
        self._idle_since = time.monotonic()
        self._lag_total = 0
        self._loop_at = self._progress_at = time.monotonic()  # liveness: the loop turns; work gets done

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
        self._restore_state(partitions)
        # librdkafka keeps a partition's pause across losing and regaining it: every new partition starts
        # in the state the loop believes it is in, never paused while the loop thinks it is not.
        consumer.incremental_assign(partitions)
        if partitions:
            (consumer.pause if self._paused else consumer.resume)(partitions)
        self._assigned = bool(consumer.assignment()) or bool(partitions)
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what is done for the revoked partitions: finish the batches in hand, then commit.
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._finish_all()
        revoked = {(p.topic, p.partition) for p in partitions}
        if redo := self.delivery.drain(timeout=30.0):  # a batch failed: re-read what we keep
            self._rewind(redo, keep_out=revoked)
        remaining = {(p.topic, p.partition) for p in consumer.assignment()} - revoked
        self._assigned = bool(remaining)
        self._drop_state(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may own them already. Drop the work, commit nothing.
        log.warning("lost %s; dropping the batches in hand", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._drop_all()
        self.delivery.on_lost()
        self._assigned = False
        self._drop_state(partitions)
        self._set_paused(False)  # nothing awaits acks now; the next assignment starts resumed

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
            self.metrics.serve(self.s.metrics_port, self.health)
        self.delivery.start()
        if self.state is not None:
            changelog.ensure_changelog(self.s.kafka_config(), self.s.samples_topic, self.s.state_changelog_topic())
        self.consumer.subscribe([self.s.samples_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)
        self._idle_since = time.monotonic()
        with steady_heap(self.s.gc_gen0):
            return self._loop(max_idle_s)

    def _loop(self, max_idle_s: float | None) -> Stats:
        try:
            while not self.stop_event.is_set():
                self._loop_at = time.monotonic()
                if not self._work_waiting():
                    self._progress_at = self._loop_at
                if not self._assigned:  # waiting for the group (e.g. a dead member's session to expire)
                    self._idle_since = time.monotonic()
                if self._fill():  # batch N+1 goes into inference …
                    self._idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - self._idle_since > max_idle_s \
                        and not (self._forming or self.pool or self.delivery.pending()):
                    break
                self._emit_finished()  # … while this thread produces and commits batch N
                self._expire_idle()
                if redo := self.delivery.poll():
                    self._rewind(redo)
                self._backpressure()
                self._update_lag()
            self._finish_all()
            if self.delivery.drain(timeout=60.0):
                log.warning("a batch failed at shutdown; it is re-read on restart (nothing past it committed)")
        finally:
            self.pool.shutdown()
            self.consumer.close()  # leaves the group (its revoke may still wait for a commit in flight)
            self.producer.flush(10)
            if self.watchdog is not None:  # last: a Kafka call made above may hang too
                self.watchdog.close()
            self.stats.inference_s = self.pool.seconds
            self.stats.commits = self.delivery.commits
        return self.stats

    def _work_waiting(self) -> bool:
        return bool(self._forming or self.pool or self.delivery.pending() or self._lag_total > 0)

    def health(self) -> tuple[bool, str]:
        """Live unless the loop is stuck (e.g. in a blocking Kafka call) or has made no progress for
        liveness_s while work waits (messages in hand, acks pending or lag on the partitions)."""
        now, limit = time.monotonic(), self.s.liveness_s
        if now - self._loop_at > limit:
            return False, f"the loop has not turned for {now - self._loop_at:.0f} s"
        if self._work_waiting() and now - self._progress_at > limit:
            return False, f"no batch done for {now - self._progress_at:.0f} s while work waits"
        return True, "ok"

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
        if self.pool.busy() > self.workers:  # every worker busy and work queued behind them
            return False
        max_wait = self.s.max_wait_ms / 1000
        # With batches in inference, take only what is already fetched: blocking here would hold back
        # the emit of finished batches.
        wait = 0.0 if self.pool else max(0.0, max_wait - self._forming_age())
        msgs = [m for m in self.consumer.consume(self.s.batch_size - len(self._forming), wait)
                if not self._is_error(m)]
        if msgs and not self._forming:
            self._forming_since = time.monotonic()
        self._forming.extend(msgs)
        if self._forming and (len(self._forming) >= self.s.batch_size or not self.pool
                              or self._forming_age() >= max_wait):
            self._dispatch()
        return bool(msgs)

    def _dispatch(self) -> None:
        msgs, self._forming = self._forming, []
        batch = prepare(msgs, self.model, self.s.max_message_bytes, self.s.mem_total_gb, self.cache)
        if batch.keys is not None:
            self.stats.cache_hits += batch.cache_hits
            self.stats.cache_lookups += len(batch.keys)
            self.metrics.cache_lookups.labels("hit").inc(batch.cache_hits)
            self.metrics.cache_lookups.labels("miss").inc(len(batch.keys) - batch.cache_hits)
        self.stats.consumed += len(batch)
        self.metrics.samples.inc(len(batch))
        self.metrics.batch_size.observe(len(batch))
        self.pool.submit(batch)

    def _emit_finished(self) -> None:
        """Emit finished batches, oldest first. Until the oldest is done, sleep until a worker frees up,
        or until there may be work for an idle one: soon (new messages start at once), or when the
        forming batch is due (every worker busy: it only needs to be queued by then)."""
        if self.pool and not self.pool.oldest_done():
            busy = self.pool.busy()
            due = self.s.max_wait_ms / 1000 - self._forming_age()
            timeout = None if busy > self.workers else max(0.0, due if busy == self.workers else
                                                           min(due, _WAIT_SLICE_S))
            self.pool.wait(timeout)
        while self.pool.oldest_done():
            self._emit(*self.pool.pop_oldest())

    def _finish_all(self) -> None:
        """Infer and emit everything consumed so far, in order (on revoke and at shutdown)."""
        if self._forming:
            self._dispatch()
        while self.pool:
            self._emit(*self.pool.pop_oldest())

    def _drop_all(self) -> dict[tuple[str, int], int]:
        """Forget every message in hand (its partitions are gone, or a transaction aborted); returns the
        earliest dropped offset per partition."""
        first: dict[tuple[str, int], int] = {}
        for batch in self.pool.drop_all():
            for tp, off in batch.first_offsets.items():
                first[tp] = min(first.get(tp, off), off)
        for m in self._forming:
            topic, part, off = coords(m)
            first[(topic, part)] = min(first.get((topic, part), off), off)
        self._forming = []
        return first

    def _emit(self, batch: Batch, computed: np.ndarray) -> None:
        probs = batch.probabilities(computed, self.cache)
        if self.cache is not None:
            self.metrics.cache_entries.set(self.cache.entries)
        # Alert state changes are staged per batch; the delivery strategy applies them (exactly-once: only
        # once the batch is committed, so an aborted transaction leaves no trace in them).
        changes = self.state.begin() if self.state is not None else None
        records, verdict_labels = route(
            batch, probs, self.model.labels, self.model_ref, predictions_topic=self.s.predictions_topic,
            alerts_topic=self.s.alerts_topic, dlq_topic=self.s.dlq_topic, emit_predictions=self.s.emit_predictions,
            hysteresis=self.hysteresis, dlq_max_bytes=min(self.s.max_message_bytes * 4, 1_000_000),
            undeliverable=self.delivery.retries.give_up(), changes=changes,
        )
        state_records = changelog.records(changes, self.s.state_changelog_topic()) if changes else []

        def account() -> None:
            self._account(batch, records, verdict_labels)

        if redo := self.delivery.emit(batch, records, changes, state_records, on_commit=account):
            self._rewind(redo)
            return
        self._progress_at = time.monotonic()

    def _rewind(self, batches: list[Batch], keep_out: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset(),
                ) -> None:
        """After a failed output (an aborted transaction, a failed delivery): wait the retry backoff, drop the
        batches consumed after these and seek every partition (but ``keep_out``, being revoked) back to the
        earliest offset not yet committed."""
        delay = self.delivery.retries.backoff()
        log.warning("output failed; re-processing from the failed batch in %.1f s", delay)
        time.sleep(delay)
        rewind = self._drop_all()
        for batch in batches:
            for tp, off in batch.first_offsets.items():
                rewind[tp] = min(rewind.get(tp, off), off)
        for (topic, part), off in rewind.items():
            if (topic, part) not in keep_out:
                self.consumer.seek(TopicPartition(topic, part, off))
        self._idle_since = time.monotonic()  # the rewound messages are work: a bounded run must not end now

    def _backpressure(self) -> None:
        """Pause the assigned partitions while the output backlog is over its bound; resume when half drained."""
        fill = self.delivery.backlog()
        if not self._paused and fill > 1:
            self.consumer.pause(self.consumer.assignment())
            self._set_paused(True)
        elif self._paused and fill <= 0.5:
            self.consumer.resume(self.consumer.assignment())
            self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.metrics.paused.set(int(paused))

    def _account(self, batch: Batch, records: list[Record], verdict_labels: list[str]) -> None:
        self.stats.batches += 1
        self.stats.commits = self.delivery.commits
        self.stats.verdicts += len(verdict_labels)
        self.stats.dlq += len(batch.invalid)
        now_ms = time.time() * 1000
        # One metric update per label and batch: a labelled inc() per verdict was a hot spot of the loop.
        for label, count in Counter(verdict_labels).items():
            self.metrics.verdicts.labels(label).inc(count)
            self.stats.labels[label] = self.stats.labels.get(label, 0) + count
        for msg, exc in batch.invalid:
            self.metrics.dlq.labels(exc.reason).inc()
            log.info("DLQ %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
        for r in records:
            if r.reason == "undeliverable":
                self.stats.dlq += 1
                self.metrics.dlq.labels(r.reason).inc()
                self.metrics.undeliverable.inc()
                log.warning("DLQ %s[%d]@%d: its output could not be delivered", *(r.source or ("?", -1, -1)))
            if r.state is not None:
                self.stats.alerts += 1
                self.metrics.alerts.labels(r.state).inc()
        stamps = np.array([msg.timestamp() for msg, _ in batch.valid], dtype=np.float64).reshape(-1, 2)
        known = stamps[stamps[:, 0] != TIMESTAMP_NOT_AVAILABLE, 1]
        self.metrics.latency.observe_many(np.maximum(0.0, (now_ms - known) / 1000))

    def _update_lag(self) -> None:
        if time.monotonic() - self._last_lag < 5:
            return
        self._last_lag = time.monotonic()
        try:
            total = 0
            for tp in self.consumer.position(self.consumer.assignment()):
                _, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.lag.labels(str(tp.partition)).set(max(0, high - tp.offset))
                    total += max(0, high - tp.offset)
            self._lag_total = total
        except KafkaException:
            pass

    # -- hysteresis state (consumer/state.py, consumer/changelog.py) ---------------------------------
    def _restore_state(self, partitions: list[TopicPartition]) -> None:
        """Restore the newly assigned partitions' state from the changelog, to its end offset, before
        processing them (each starts empty: what an earlier owner held may be stale)."""
        if self.state is None:
            return
        fresh = {p.partition: self.state.assign(p.partition) for p in partitions
                 if p.topic == self.s.samples_topic}
        for r in changelog.restore(self.s.kafka_config(), self.s.state_changelog_topic(), fresh,
                                   on_corrupt=self.metrics.changelog_corrupt.inc):
            log.info("restored partition %d: %d changelog records (%d corrupt, skipped) → %d keys in %.2f s",
                     r.partition, r.records, r.corrupt, r.keys, r.seconds)
            self.metrics.restore_seconds.observe(r.seconds)
            self.metrics.restore_records.inc(r.records)
        self.metrics.state_keys.set(len(self.state))

    def _drop_state(self, partitions: list[TopicPartition]) -> None:
        if self.state is not None:
            for p in partitions:
                if p.topic == self.s.samples_topic:
                    self.state.drop(p.partition)
            self.metrics.state_keys.set(len(self.state))

    def _expire_idle(self) -> None:
        """Every tenth of the expiry (at most each minute): forget keys idle longer than the expiry, with a
        tombstone each, after a `resolved` for those still firing; as a batch of its own."""
        if self.state is None or time.monotonic() < self._next_sweep:
            return
        changes = self.state.expire(time.time() - self.s.state_expiry_s, limit=_SWEEP_LIMIT)
        # More idle keys than one sweep takes: go on at the next turn of the loop, between batches.
        self._next_sweep = time.monotonic() + (0.0 if len(changes) >= _SWEEP_LIMIT else
                                                min(60.0, max(0.1, self.s.state_expiry_s / 10)))
        if not changes:
            return
        expired = len(changes.expired)
        records = expiry_alerts(changes, self.s.alerts_topic)
        state_records = changelog.records(changes, self.s.state_changelog_topic())

        def account() -> None:
            self._account(Batch(), records, [])
            self.metrics.state_expired.inc(expired)

        if redo := self.delivery.emit(Batch(), records, changes, state_records, on_commit=account):
            self._rewind(redo)  # aborted: nothing changed (the sweep tries again) but the batches with it
            return
        self.metrics.state_keys.set(len(self.state))
        log.info("expired %d idle keys (%d resolved)", expired, len(records))
