"""``perfwatch notify``: a consumer group on the alerts topic that delivers alerts to Alertmanager and/or a
webhook, and commits its offsets only after every sink accepted what those records caused.

Delivery is at least once: a redelivered record re-sends an alert Alertmanager already has, which it
deduplicates by labels. While a sink is down the partitions are paused (the member stays in its group)
and one coalesced request is retried with backoff, so nothing is lost and nothing floods a sink that
comes back. A new owner of a partition rebuilds the alerts' state from the topic's recent history.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from perfwatch.settings import NotifySettings
from perfwatch.subscriber.book import AlertBook, Transition
from perfwatch.subscriber.payloads import AlertShape
from perfwatch.subscriber.sinks import AlertmanagerSink, Rejected, Unavailable, WebhookSink, deliver
from perfwatch.verdict import Alert

log = logging.getLogger("perfwatch.notify")


def _where(m: Message) -> tuple[int, int]:
    """(partition, offset) of a consumed message (the client types both as optional)."""
    return int(m.partition() or 0), int(m.offset() or 0)


@dataclass
class NotifyStats:
    consumed: int = 0
    bad_records: int = 0
    firing: int = 0  # transitions seen
    resolved: int = 0
    alertmanager_posts: int = 0  # accepted requests
    alertmanager_alerts: int = 0  # alerts in them
    webhook_posts: int = 0
    retries: int = 0
    rejected: int = 0
    commits: int = 0


class Notifier:
    def __init__(self, settings: NotifySettings, clock: Any = time.time) -> None:
        settings.check()
        s = self.s = settings
        self.clock = clock
        self.shape = AlertShape(s.alertname, s.severity, s.static_labels(), s.generator_url)
        self.book = AlertBook(s.resend_interval_s, s.quiet_s, s.resolved_keep_s, clock)
        self.alertmanager = AlertmanagerSink(s.alertmanager, s.http_timeout_s) if s.alertmanager else None
        secret = s.webhook_secret.get_secret_value().encode() if s.webhook_secret else None
        self.webhook = WebhookSink(s.webhook, secret, s.http_timeout_s) if s.webhook else None
        self.stats = NotifyStats()
        self.stop_event = threading.Event()
        self.ready = threading.Event()  # set once partitions are assigned
        self._events: list[Transition] = []  # webhook posts not yet accepted
        self._assigned: set[int] = set()
        self._carry: list[Message] = []  # consumed while waiting for a sink, processed next round
        self.consumer = Consumer({
            **s.kafka_config(), "group.id": s.notify_group_id, "enable.auto.commit": False,
            "auto.offset.reset": s.auto_offset_reset, "isolation.level": "read_committed",
            "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
        })

    # -- group membership ------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions:
            log.info("assigned %s", sorted(p.partition for p in partitions))
            self._restore(partitions)
            self._assigned |= {p.partition for p in partitions}
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {p.partition for p in partitions}
        log.info("revoked %s", sorted(gone))
        self._assigned -= gone
        self.book.drop_partitions(gone)  # uncommitted records go to the new owner, which re-sends
        self._events = [t for t in self._events if t.entry.partition not in gone]

    def _restore(self, partitions: list[TopicPartition]) -> None:
        """Replay recent history up to the committed offset into the book (no webhook posts: those went
        out before the commit). Alertmanager then gets the firing alerts again: a harmless re-send."""
        if self.s.restore_hours <= 0:
            return
        topic = self.s.alerts_topic
        since_ms = int((self.clock() - self.s.restore_hours * 3600) * 1000)
        reader = Consumer({**self.s.kafka_config(), "group.id": f"perfwatch-notify-restore-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": False, "isolation.level": "read_committed"})
        try:
            committed = self.consumer.committed([TopicPartition(topic, p.partition) for p in partitions], timeout=10)
            ranges: dict[int, tuple[int, int]] = {}
            for tp in committed:
                low, high = reader.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
                end = tp.offset if tp.offset >= 0 else (high if self.s.auto_offset_reset == "latest" else low)
                start = reader.offsets_for_times([TopicPartition(topic, tp.partition, since_ms)], timeout=10)[0].offset
                start = low if start < 0 else max(start, low)
                if start < end:
                    ranges[tp.partition] = (start, end)
            if not ranges:
                return
            reader.assign([TopicPartition(topic, p, a) for p, (a, _) in ranges.items()])
            left = dict(ranges)
            deadline = time.monotonic() + 60
            while left and time.monotonic() < deadline:
                for m in reader.consume(500, timeout=0.5):
                    p, off = _where(m)
                    if m.error() or p not in left or off >= left[p][1]:
                        continue
                    if (alert := self._decode(m, count=False)) is not None:
                        self.book.apply(alert, p, at=m.timestamp()[1] / 1000)
                    if off + 1 >= left[p][1]:
                        del left[p]
            self.book.expire()  # quiet times that passed while nobody owned the partition
            log.info("restored %d alert(s) from %s", len(self.book.entries), topic)
        except KafkaException as exc:
            log.warning("could not restore alert state from %s: %s", topic, exc)
        finally:
            reader.close()

    # -- the loop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    def run(self, max_idle_s: float | None = None) -> NotifyStats:
        """Deliver until stopped (or ``max_idle_s`` without a record, for bounded runs)."""
        self.consumer.subscribe([self.s.alerts_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        idle_since = time.monotonic()
        try:
            while not self.stop_event.is_set():
                timeout = max(0.05, min(0.5, self.book.next_due_in()))
                msgs, self._carry = self._carry + self.consumer.consume(500, timeout=timeout), []
                offsets = self._take(msgs)
                if offsets:
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
                for t in self.book.expire():
                    self._events.append(t)
                    self.stats.resolved += 1
                if not self._flush():
                    break  # stopped while a sink was down: commit nothing, the records come again
                self._commit(offsets)
        finally:
            self.consumer.close()
        return self.stats

    def _decode(self, m: Message, count: bool = True) -> Alert | None:
        try:
            return Alert.model_validate_json(m.value() or b"")
        except ValidationError as exc:
            if count:
                self.stats.bad_records += 1
                log.warning("skipping a bad alert record at %s[%s]@%s: %s", m.topic(), m.partition(), m.offset(),
                            str(exc).splitlines()[0])
            return None

    def _take(self, msgs: list[Message]) -> dict[int, int]:
        """Apply records to the book; return the offsets to commit once the sinks accepted them."""
        offsets: dict[int, int] = {}
        for i, m in enumerate(msgs):
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", err)
                continue
            p, off = _where(m)
            if p not in self._assigned:  # carried over a revoke: the new owner has it
                continue
            self.stats.consumed += 1
            alert = self._decode(m)
            if alert is None:
                offsets[p] = off + 1
                continue
            if alert.state == "resolved" and self._unsent_firing(alert):
                # Send the firing first: an alert that Alertmanager only ever sees resolved is never notified.
                self._carry = msgs[i:] + self._carry
                self.stats.consumed -= 1
                break
            offsets[p] = off + 1
            if (t := self.book.apply(alert, p)) is not None:
                self._events.append(t)
                if t.status == "firing":
                    self.stats.firing += 1
                else:
                    self.stats.resolved += 1
        return offsets

    def _unsent_firing(self, alert: Alert) -> bool:
        e = self.book.entries.get(f"{alert.run_id}/{alert.host}")
        return self.alertmanager is not None and e is not None and e.status == "firing" and e.last_sent is None

    def _wait(self, seconds: float) -> bool:
        """Wait for a retry while staying in the group: partitions paused, callbacks served."""
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(assigned)
        self._carry.extend(self.consumer.consume(500, timeout=seconds))
        return not self.stop_event.is_set()

    def _retry_note(self, exc: Exception, delay: float) -> None:
        self.stats.retries += 1
        log.warning("sink unavailable (%s); retrying in %.1fs", exc, delay)

    def _deliver(self, attempt: Any) -> bool:
        try:
            return deliver(attempt, wait=self._wait, max_backoff_s=self.s.max_backoff_s, on_retry=self._retry_note)
        except Rejected as exc:  # retrying cannot help; skip it rather than stall the loop
            self.stats.rejected += 1
            log.error("sink rejected a request, skipped: %s", exc)
            return True
        finally:
            if paused := self.consumer.assignment():
                self.consumer.resume(paused)

    def _flush(self) -> bool:
        due = self.book.due()
        if due and self.alertmanager is not None:
            am = self.alertmanager

            def post_alerts() -> None:  # built per attempt: endsAt counts from the moment of sending
                now = datetime.fromtimestamp(self.clock(), UTC)
                am.send([self.shape.alertmanager(e, now, self.s.resend_interval_s) for e in due])

            if not self._deliver(post_alerts):
                return False
            self.stats.alertmanager_posts += 1
            self.stats.alertmanager_alerts += len(due)
        self.book.mark_sent(due)
        if self.webhook is None:
            self._events.clear()
            return True
        hook = self.webhook
        while self._events:
            body = self.shape.webhook(self._events[0], self.s.webhook_text)
            if not self._deliver(lambda b=body: hook.send(b)):  # type: ignore[misc]
                return False
            self.stats.webhook_posts += 1
            self._events.pop(0)
        return True

    def _commit(self, offsets: dict[int, int]) -> None:
        tps = [TopicPartition(self.s.alerts_topic, p, o) for p, o in offsets.items() if p in self._assigned]
        if not tps:
            return
        try:
            self.consumer.commit(offsets=tps, asynchronous=False)
            self.stats.commits += 1
        except KafkaException as exc:  # e.g. a rebalance: the records come again and are re-sent (deduplicated)
            log.warning("commit failed: %s", exc)


def notify(settings: NotifySettings, max_idle_s: float | None = None, install_signals: bool = True) -> NotifyStats:
    """Run a notifier until SIGTERM/SIGINT (the CLI's one call)."""
    n = Notifier(settings)
    if install_signals:
        import signal

        signal.signal(signal.SIGTERM, lambda *_: n.stop())
        signal.signal(signal.SIGINT, lambda *_: n.stop())
    return n.run(max_idle_s=max_idle_s)


__all__ = ["Notifier", "NotifyStats", "Unavailable", "notify"]
