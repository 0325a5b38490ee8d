"""The session broker and per-test topic/group factories (quix-streams style), used by every suite
that needs Kafka. Broker choice: PERFWATCH_TEST_BOOTSTRAP if set, else testcontainers' Kafka when a
Docker engine answers, else the project's own local Apache Kafka (jars from Maven Central)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from perfwatch.kafkaio import ensure_topics


@dataclass
class Broker:
    bootstrap: str
    kind: str
    local: Any = None  # LocalKafka when the project's own broker runs

    @property
    def conf(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap}


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # noqa: BLE001 - no engine is the normal case here
        return False


def _say(config: pytest.Config, line: str) -> None:
    """Write to the terminal even while pytest captures output (CI's log shows the broker version)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Broker]:
    external = os.environ.get("PERFWATCH_TEST_BOOTSTRAP")
    if external:
        _say(pytestconfig, f"\nexternal Kafka broker at {external}")
        yield Broker(external, "external")
        return
    if _docker_answers() and not os.environ.get("PERFWATCH_TEST_NO_DOCKER"):
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1") as c:
            yield Broker(c.get_bootstrap_server(), "testcontainers")
        return
    from perfwatch.tooling import LocalKafka

    local = LocalKafka(Path(tmp_path_factory.mktemp("kafka")))
    state = local.start()
    _say(pytestconfig, f"\nApache Kafka {state.kafka_version} (local, from Maven Central jars) on {state.bootstrap}; "
                       f"broker log: {local.broker_version_line()}")
    try:
        yield Broker(state.bootstrap, "local", local)
    finally:
        local.stop()


@pytest.fixture
def topic_factory(kafka: Broker) -> Callable[..., str]:
    def make(prefix: str = "t", partitions: int = 3) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka.conf, [name], partitions=partitions)
        return name

    return make


@pytest.fixture
def group_factory() -> Callable[[], str]:
    return lambda: f"g-{uuid.uuid4().hex[:10]}"
