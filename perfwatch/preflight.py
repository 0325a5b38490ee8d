"""Fail fast, in one line, before a long-running command starts: is the broker there, are the topics?"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from perfwatch.kafkaio import ensure_topics


class BrokerUnreachable(RuntimeError):
    pass


def check_broker(conf: dict[str, Any], timeout: float = 10.0) -> int:
    """Return the number of brokers, or raise BrokerUnreachable with the reason (auth failures included)."""
    errors: list[str] = []
    admin_conf: dict[str, Any] = {**conf, "log_level": 0, "error_cb": lambda e: errors.append(str(e)),
                                  "socket.connection.setup.timeout.ms": int(timeout * 1000)}
    admin = AdminClient(admin_conf)
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        detail = errors[-1] if errors else str(exc.args[0])
        raise BrokerUnreachable(f"cannot reach Kafka at {conf.get('bootstrap.servers')}: {detail}") from None
    return len(md.brokers)


def prepare_topics(conf: dict[str, Any], samples_topic: str, outputs: list[str], partitions: int = 3) -> None:
    """Create the samples topic and the output topics if missing (outputs get the samples topic's partitions)."""
    admin = AdminClient({**conf, "log_level": 0})
    md = admin.list_topics(timeout=10).topics
    n = len(md[samples_topic].partitions) if samples_topic in md else partitions
    ensure_topics(conf, [samples_topic, *outputs], partitions=n)
