"""The Kafka clients' configuration, built from the consumer's settings (one place for every client knob)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from perfwatch.settings import ConsumerSettings

ErrorCallback = Callable[[KafkaError], None]

# A transaction spans only produce + commit (inference runs before it begins): kept short, since until a
# dead producer's transaction times out, read_committed readers wait at that offset.
TRANSACTION_TIMEOUT_MS = 10_000


def consumer_config(s: ConsumerSettings, error_cb: ErrorCallback) -> dict[str, Any]:
    return {
        **s.kafka_config(), "group.id": s.group_id, "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": s.auto_offset_reset, "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000, "max.poll.interval.ms": 300_000,
        "fetch.message.max.bytes": max(1_048_576, s.max_message_bytes * 4),
        "error_cb": error_cb,
    }


def transactional_id(s: ConsumerSettings) -> str:
    """Stable across restarts (group + instance, the host name by default: a container's or pod's name), so
    a restarted member fences its crashed or stuck predecessor at once instead of waiting for the broker
    to time its transaction out. Two members of one group on one host need distinct --instance-id."""
    return s.transactional_id or f"perfwatch-{s.group_id}-{s.instance_id or socket.gethostname()}"


def producer_config(s: ConsumerSettings, error_cb: ErrorCallback) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **s.kafka_config(), "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
        "message.max.bytes": 2_000_000, "error_cb": error_cb,
    }
    if s.guarantee == "exactly-once":
        conf["transactional.id"] = transactional_id(s)
        conf["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return conf
