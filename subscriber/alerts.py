"""Subscribe to the alerts topic: follow live or from the beginning, filter, print lines or JSON, and
give CI an exit code (``--until-idle S --fail-on-alert``)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from perfwatch.errors import InputError
from perfwatch.verdict import Alert


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


def follow(conf: dict[str, Any], topic: str, on_alert: Callable[[Alert], None], *, from_beginning: bool,
           flt: AlertFilter, until_idle_s: float | None = None, stop: Any = None, ready: Any = None) -> int:
    """Call ``on_alert`` for each matching alert; return how many matched. No group offsets are used:
    every subscriber sees every alert."""
    c = Consumer({**conf, "group.id": f"perfwatch-alerts-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    seen = 0
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            raise InputError(f"alerts topic {topic!r} not found")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        c.assign([TopicPartition(topic, p, start) for p in md.partitions])
        if ready is not None:
            ready.set()
        last = time.monotonic()
        while stop is None or not stop.is_set():
            msgs = c.consume(100, timeout=0.25)
            for m in msgs:
                if m.error():
                    continue
                last = time.monotonic()
                alert = Alert.model_validate_json(m.value() or b"{}")
                if flt(alert):
                    seen += 1
                    on_alert(alert)
            if until_idle_s is not None and time.monotonic() - last > until_idle_s:
                break
    finally:
        c.close()
    return seen


def as_json(a: Alert) -> str:
    return json.dumps(a.model_dump(mode="json"))
