"""The Kafka clients' configuration, built from the consumer's settings (one place for every client knob)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from perfwatch.settings import ConsumerSettings

ErrorCallback = Callable[[KafkaError], None]


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
    """A stable --transactional-id lets a restarted instance fence its crashed predecessor at once.
    Otherwise the id is unique and a crashed process's open transaction is aborted by the broker after
    transaction.timeout.ms."""
    return s.transactional_id or (
        f"perfwatch-{s.group_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


def producer_config(s: ConsumerSettings, error_cb: ErrorCallback) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **s.kafka_config(), "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
        "message.max.bytes": 2_000_000, "error_cb": error_cb,
    }
    if s.guarantee == "exactly-once":
        conf["transactional.id"] = transactional_id(s)
        # Kept short, since a transaction spans only produce + commit (inference runs before it begins):
        # until a dead producer's transaction times out, read_committed readers wait at that offset.
        conf["transaction.timeout.ms"] = 10_000
    return conf
