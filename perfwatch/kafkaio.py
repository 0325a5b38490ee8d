"""Small helpers over confluent-kafka used by several commands and the tests: topics and read-back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from perfwatch.errors import KafkaSetupError


def ensure_topics(conf: dict[str, Any], names: Iterable[str], partitions: int = 3,
                  replication: int = 1, timeout: float = 30.0, config: dict[str, str] | None = None) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are)."""
    admin = AdminClient(conf)
    existing = set(admin.list_topics(timeout=timeout).topics)
    todo = [NewTopic(n, num_partitions=partitions, replication_factor=replication, config=config or {})
            for n in names if n not in existing]
    if not todo:
        return
    for name, fut in admin.create_topics(todo, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaSetupError(f"cannot create topic {name}: {exc}") from None
    # Metadata can lag creation by a moment; wait until every partition has a leader.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout).topics
        if all(t.topic in md and len(md[t.topic].partitions) == t.num_partitions
               and all(p.leader >= 0 for p in md[t.topic].partitions.values()) for t in todo):
            return
        time.sleep(0.1)


def end_offsets(conf: dict[str, Any], topic: str, timeout: float = 10.0) -> dict[int, int]:
    c = Consumer({**conf, "group.id": f"perfwatch-probe-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=timeout).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in md.partitions}
    finally:
        c.close()


def read_topic(conf: dict[str, Any], topic: str, *, idle_s: float = 3.0, max_s: float = 120.0,
               read_committed: bool = False) -> Iterator[Message]:
    """Every message from the beginning of ``topic`` until ``idle_s`` passes with nothing new
    (or ``max_s`` in all). Uses no group offsets (assign, not subscribe)."""
    c = Consumer({**conf, "group.id": f"perfwatch-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "isolation.level": "read_committed" if read_committed else "read_uncommitted"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        start = last = time.monotonic()
        while time.monotonic() - last < idle_s and time.monotonic() - start < max_s:
            for msg in c.consume(500, timeout=0.5):
                if msg.error():
                    continue
                last = time.monotonic()
                yield msg
    finally:
        c.close()


def headers_of(msg: Message) -> dict[str, bytes]:
    """A message's headers as a dict (the last value wins for repeated names)."""
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: (v.encode() if isinstance(v, str) else v or b"") for k, v in pairs}
