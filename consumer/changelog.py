"""The state store's changelog: a compacted topic, partition i holding the state of input partition i.

Restore reads a partition from its beginning up to the end offset taken when the restore starts (under
read_committed that is the last stable offset: records of a transaction still open, e.g. a crashed
member's, are not state yet), judged by position, never by a quiet moment. A record that does not decode
is skipped, logged with its offset and reason, and counted; the key keeps what earlier records said.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from perfwatch.consumer.routing import Record
from perfwatch.consumer.state import Changes, CorruptState, PartitionState, decode
from perfwatch.errors import KafkaSetupError
from perfwatch.kafkaio import ensure_topics

log = logging.getLogger("perfwatch.consumer.changelog")

# Compacted, and segments roll hourly so the cleaner can drop superseded values and (after
# delete.retention.ms, 1 day by default) tombstones; the active segment is never compacted.
TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.ms": str(3_600_000)}


def partition_count(conf: dict[str, Any], topic: str, timeout: float = 10.0) -> int:
    md = AdminClient(conf).list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None or md.error is not None:
        raise KafkaSetupError(f"topic {topic} not found")
    return len(md.partitions)


def ensure_changelog(conf: dict[str, Any], samples_topic: str, changelog_topic: str) -> None:
    """Create the changelog with the samples topic's partition count; refuse one that differs."""
    n = partition_count(conf, samples_topic)
    ensure_topics(conf, [changelog_topic], partitions=n, config=TOPIC_CONFIG)
    if (m := partition_count(conf, changelog_topic)) != n:
        raise KafkaSetupError(f"changelog {changelog_topic} has {m} partitions, {samples_topic} has {n}: "
                           "partition i of one must match partition i of the other")


def records(changes: Changes, topic: str) -> list[Record]:
    return [Record(topic, key, value, partition=p) for p, key, value in changes.records()]


@dataclass
class Restored:
    partition: int
    records: int = 0
    corrupt: int = 0
    keys: int = 0
    seconds: float = 0.0
    end: int = 0


@dataclass
class _Progress:
    end: int
    done: bool = False
    result: Restored = field(default_factory=lambda: Restored(-1))


def restore(conf: dict[str, Any], topic: str, partitions: dict[int, PartitionState], *,
            timeout_s: float = 600.0, on_corrupt: Callable[[], None] | None = None) -> list[Restored]:
    """Fill each given (empty) PartitionState from changelog partition i, up to its end offset."""
    if not partitions:
        return []
    t0 = time.monotonic()
    c = Consumer({**conf, "group.id": f"perfwatch-restore-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "fetch.message.max.bytes": 4_194_304})
    try:
        progress: dict[int, _Progress] = {}
        for p in partitions:
            _low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            progress[p] = _Progress(high, done=high <= 0, result=Restored(p, end=high))
        todo = [p for p, pr in progress.items() if not pr.done]
        if todo:
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        while not all(pr.done for pr in progress.values()):
            if time.monotonic() - t0 > timeout_s:
                left = {p: pr.end for p, pr in progress.items() if not pr.done}
                raise TimeoutError(f"changelog {topic}: restore did not reach the end offsets {left} "
                                   f"within {timeout_s:.0f} s")
            for msg in c.consume(10_000, timeout=0.5):
                p, off = cast(int, msg.partition()), cast(int, msg.offset())
                pr = progress[p]
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:  # position reached the end of the log
                        pr.done = pr.done or off >= pr.end
                    else:
                        log.warning("changelog %s[%s] restore: %s", topic, p, err)
                    continue
                pr.result.records += 1
                key = (msg.key() or b"").decode(errors="replace")
                value = msg.value()
                if value is None:
                    partitions[p].keys.pop(key, None)
                else:
                    try:
                        partitions[p].put(key, decode(value))
                    except CorruptState as exc:
                        pr.result.corrupt += 1
                        log.warning("changelog %s[%d]@%d key %r skipped: %s", topic, p, off, key, exc)
                        if on_corrupt is not None:
                            on_corrupt()
                if off + 1 >= pr.end:
                    pr.done = True
    finally:
        c.close()
    out = []
    for p, pr in progress.items():
        partitions[p].keys = type(partitions[p].keys)(  # least recently seen first, for expiry
            sorted(partitions[p].keys.items(), key=lambda kv: kv[1].seen))
        pr.result.keys = len(partitions[p].keys)
        pr.result.seconds = time.monotonic() - t0
        out.append(pr.result)
    return out
