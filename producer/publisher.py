"""An idempotent, keyed producer that surfaces delivery errors and flushes on exit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from perfwatch.sample import Sample


@dataclass
class PublishStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Publisher:
    def __init__(self, conf: dict[str, Any], topic: str) -> None:
        self.topic = topic
        self.stats = PublishStats()
        self.producer = Producer({**conf, "enable.idempotence": True, "acks": "all", "linger.ms": 10,
                                  "compression.type": "lz4",
                                  # librdkafka's default queue holds up to 1 GB: a fast replay would fill it
                                  "queue.buffering.max.kbytes": 65536})

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.errors[str(err)] += 1

    def send(self, sample: Sample) -> None:
        self.send_raw(sample.key.encode(), sample.model_dump_json(exclude_none=True).encode())

    def send_raw(self, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.stats.sent += 1
        self.producer.poll(0)

    def close(self, timeout: float = 30.0) -> PublishStats:
        left = self.producer.flush(timeout)
        if left:
            self.stats.failed += left
            self.stats.errors[f"{left} not delivered within {timeout:.0f}s"] += 1
        return self.stats

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
