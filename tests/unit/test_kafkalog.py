"""librdkafka's lines collapse to one per state change at WARNING; every raw line stays at INFO (--verbose)."""

from __future__ import annotations

import json
import logging

import pytest

from perfwatch.kafkalog import KafkaLog, kafka_logging

FAIL = "[thrd:127.0.0.1:9092/1]: 127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stats(name: str, state: str) -> str:
    return json.dumps({"name": name, "brokers": {
        "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "INIT"},
        "127.0.0.1:9092/1": {"nodeid": 1, "state": state}}})


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_outage_is_two_lines_and_every_raw_line_is_kept_at_info(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    kl = KafkaLog(clock)
    caplog.set_level(logging.INFO)
    for i in range(500):
        clock.now += 0.05
        kl.log(logging.ERROR, "%s [%s] %s", "FAIL", "perfwatch#consumer-1", FAIL)
        if i % 20 == 0:
            kl.stats(_stats("perfwatch#consumer-1", "DOWN"))
    clock.now += 2
    kl.stats(_stats("perfwatch#consumer-1", "UP"))
    kl.stats(_stats("perfwatch#consumer-1", "UP"))
    assert _warnings(caplog) == [
        "perfwatch#consumer-1: broker down (127.0.0.1:9092/1: Connect to ipv4#127.0.0.1:9092 failed: "
        "Connection refused)",
        "perfwatch#consumer-1: broker back after 27 s"]
    assert sum(r.name == "librdkafka" for r in caplog.records) == 500


def test_other_warnings_are_rate_limited_per_facility(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    kl = KafkaLog(clock)
    caplog.set_level(logging.WARNING)
    for _ in range(100):
        clock.now += 1
        kl.log(logging.WARNING, "%s [%s] %s", "GETPID", "perfwatch#producer-2", "Coordinator load in progress")
    assert _warnings(caplog) == ["perfwatch#producer-2: Coordinator load in progress",
                                 "perfwatch#producer-2: Coordinator load in progress (+59 like it in the last 60 s)"]


def test_every_client_config_gets_the_logger() -> None:
    from perfwatch.settings import KafkaSettings

    conf = KafkaSettings().kafka_config()
    assert conf["logger"] is kafka_logging()["logger"] and conf["client.id"] == "perfwatch"
