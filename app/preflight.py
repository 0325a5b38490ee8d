"""Fail fast, in one line, before a long-running command starts: is the broker there, are the topics?"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from perfwatch.errors import PerfwatchError
from perfwatch.kafkaio import ensure_topics


class BrokerUnreachable(PerfwatchError, RuntimeError):
    """No broker answered (exit 1): the message says how to start the local one or set the address."""

    exit_code = 1


HOW_TO_CONNECT = ("start the local broker with `perfwatch broker start`, or give the address with "
                  "--bootstrap-servers or PERFWATCH_BOOTSTRAP_SERVERS")


def check_broker(conf: dict[str, Any], timeout: float = 10.0) -> int:
    """Return the number of brokers, or raise BrokerUnreachable with the reason. An authentication
    failure ends the wait at once and is named as such (the password is never part of the message)."""
    errors: list[KafkaError] = []
    probe_conf: dict[str, Any] = {**conf, "log_level": 0, "error_cb": errors.append,
                                  "socket.connection.setup.timeout.ms": int(timeout * 1000)}
    probe = Producer(probe_conf)  # a producer handle serves error callbacks on poll(); AdminClient does not
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return len(probe.list_topics(timeout=1.0).brokers)
        except KafkaException as exc:
            last = exc
        probe.poll(0)
        auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        if auth:
            raise BrokerUnreachable(f"Kafka at {conf.get('bootstrap.servers')} refused the credentials: "
                                    f"{auth[-1].str()}")
    detail = errors[-1].str() if errors else str(last)
    raise BrokerUnreachable(f"cannot reach Kafka at {conf.get('bootstrap.servers')} ({detail}): {HOW_TO_CONNECT}")


def prepare_topics(conf: dict[str, Any], samples_topic: str, outputs: list[str], partitions: int = 3) -> None:
    """Create the samples topic and the output topics if missing (outputs get the samples topic's partitions)."""
    admin = AdminClient({**conf, "log_level": 0})
    md = admin.list_topics(timeout=10).topics
    n = len(md[samples_topic].partitions) if samples_topic in md else partitions
    ensure_topics(conf, [samples_topic, *outputs], partitions=n)
