"""Subscribe to the alerts topic: follow live or from the beginning, filter, print lines or JSON, and
give CI an exit code (``--until-idle S --fail-on-alert``)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from perfwatch.errors import InputError
from perfwatch.verdict import Alert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertFilter:
    run_id: str | None = None
    host: str | None = None
    state: str | None = None

    def __call__(self, a: Alert) -> bool:
        return ((self.run_id is None or a.run_id == self.run_id) and (self.host is None or a.host == self.host)
                and (self.state is None or a.state == self.state))


def format_alert(a: Alert) -> str:
    state = f" [{a.state}]" if a.state else ""
    extra = "".join(f" {k} {v:g}" for k, v in (("rps", a.rps), ("p95_ms", a.p95_ms), ("err%", a.error_pct))
                    if v is not None)
    return (f"{a.ts.isoformat(timespec='seconds')} {a.label}{state} {a.run_id}/{a.host} "
            f"cpu {a.cpu_pct:.0f} mem {a.mem_pct:.0f} disk {a.disk_pct:.0f}{extra} "
            f"(confidence {a.confidence:.3f}, {a.source.topic}[{a.source.partition}]@{a.source.offset})")


@dataclass(frozen=True)
class FollowResult:
    matched: int  # alerts that passed the filter (what --fail-on-alert counts)
    skipped: int  # records that are not alerts: tombstones, other schemas, not JSON


def read_alert(m: Message) -> Alert | None:
    """The alert in a record, or None for a record that holds none (logged with where it is)."""
    try:
        return Alert.model_validate_json(m.value() or b"")
    except ValidationError as exc:
        why = "empty record (tombstone)" if not m.value() else exc.errors(include_url=False)[0]["msg"]
        log.warning("skipped %s[%s]@%s: not an alert: %s", m.topic(), m.partition(), m.offset(), why)
        return None


def _positioned(c: Consumer, topic: str, from_beginning: bool) -> list[TopicPartition]:
    """Concrete start offsets (low or high watermark) per partition, resolved now: an alert written after
    this returns is never skipped, as it could be with a lazily resolved OFFSET_END."""
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        raise InputError(f"alerts topic {topic!r} not found")
    starts = []
    for p in md.partitions:
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        starts.append(TopicPartition(topic, p, low if from_beginning else high))
    return starts


def follow(conf: dict[str, Any], topic: str, on_alert: Callable[[Alert], None], *, from_beginning: bool,
           flt: AlertFilter, until_idle_s: float | None = None, stop: Any = None, ready: Any = None) -> FollowResult:
    """Call ``on_alert`` for each matching alert; count matches and unreadable records. ``ready`` is set
    once every partition has a resolved start offset. No group offsets are used: every subscriber sees
    every alert."""
    # "error" instead of a reset policy: a start offset the broker refuses is re-resolved here, never
    # silently moved to the end (missing alerts) or the beginning (repeating old ones).
    c = Consumer({**conf, "group.id": f"perfwatch-alerts-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "error"})
    seen = skipped = 0
    try:
        starts = _positioned(c, topic, from_beginning)
        nxt = {tp.partition: tp.offset for tp in starts}
        c.assign(starts)
        if ready is not None:
            ready.set()
        last = time.monotonic()
        while stop is None or not stop.is_set():
            msgs = c.consume(100, timeout=0.25)
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._AUTO_OFFSET_RESET and m.partition() in nxt:
                        _reposition(c, topic, m.partition(), nxt)  # type: ignore[arg-type]
                    continue
                last = time.monotonic()
                nxt[m.partition()] = (m.offset() or 0) + 1  # type: ignore[index]
                alert = read_alert(m)
                if alert is None:
                    skipped += 1
                elif flt(alert):
                    seen += 1
                    on_alert(alert)
            if until_idle_s is not None and time.monotonic() - last > until_idle_s:
                break
    finally:
        c.close()
    return FollowResult(seen, skipped)


def _reposition(c: Consumer, topic: str, partition: int, nxt: dict[int, int]) -> None:
    """Back to where this follower is, within what the partition holds now (retention may have trimmed it)."""
    low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    want = min(max(nxt[partition], low), high)
    if want != nxt[partition]:
        log.warning("%s[%s]: offset %s is gone; reading on from %s", topic, partition, nxt[partition], want)
    nxt[partition] = want
    c.assign([TopicPartition(topic, p, o) for p, o in nxt.items()])


def as_json(a: Alert) -> str:
    return json.dumps(a.model_dump(mode="json"))
