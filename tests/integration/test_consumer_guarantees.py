"""The consumer's guarantees under faults (issue #15), each driven against the real broker with the real
clients wrapped to inject the fault."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from consumer.processor import StreamProcessor
from perfwatch.kafkaio import read_topic
from perfwatch.settings import ConsumerSettings
from tests.integration.faults import AbortOnceProducer, HeldAcksProducer, StallOnPauseConsumer
from tests.kafka_fixtures import Broker
from tests.streams import Topics, make_topics, produce, read_json, run_in_thread, sample_msg, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _settings(kafka: Broker, topics: Topics, bundle: Path, group: str, **kw: Any) -> ConsumerSettings:
    return ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=bundle, group_id=group,
                            **topics.settings(), **kw)


def _per_offset(kafka: Broker, topic: str, committed: bool = False) -> Counter[tuple[int, int]]:
    return Counter((v["source"]["partition"], v["source"]["offset"])
                   for v in read_json(kafka.conf, topic, committed=committed))


def test_partitions_paused_when_lost_are_consumed_after_reassignment(
        kafka: Broker, topic_factory: Any, group_factory: Any, tiny_bundle: Path) -> None:
    """Defect 0: acks stall, the loop pauses its partitions for backpressure, then the group takes them
    away (lost) and gives them back. Every sample must still get its verdict: a re-assigned partition
    starts in the state the loop believes it is in, not paused forever."""
    topics = make_topics(topic_factory)
    n = 600
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100)) for i in range(n)])
    holder: dict[str, HeldAcksProducer] = {}

    def make_producer(conf: dict[str, Any]) -> HeldAcksProducer:
        holder["p"] = HeldAcksProducer(conf)
        holder["p"].hold.set()
        return holder["p"]

    def make_consumer(conf: dict[str, Any]) -> StallOnPauseConsumer:
        # session.timeout.ms at the broker's minimum; max.poll.interval.ms may not be below it
        return StallOnPauseConsumer({**conf, "session.timeout.ms": 6000, "max.poll.interval.ms": 6000},
                                    stall_s=9.0, on_stall_end=lambda: holder["p"].hold.clear())

    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=8,
                                     max_pending_batches=2), consumer_factory=make_consumer,
                           producer_factory=make_producer)
    t = run_in_thread(proc, max_idle_s=15)
    wait_for(lambda: len(_per_offset(kafka, topics.predictions)) >= n or not t.is_alive(), timeout=120, every=3)
    proc.stop()
    t.join(60)
    c = proc.consumer
    assert isinstance(c, StallOnPauseConsumer) and c.paused_once and c.stalled
    # the fault happened as intended: paused, lost, then the partitions came back
    lost = c.events.index("lost")
    assert "pause:3" in c.events[:lost] and "assign" in c.events[lost:], c.events
    per_offset = _per_offset(kafka, topics.predictions)
    assert len(per_offset) == n, f"{n - len(per_offset)} samples never got a verdict"




def _committed(kafka: Broker, group: str, topic: str, partition: int = 0) -> int:
    c = Consumer({**kafka.conf, "group.id": group, "enable.auto.commit": False})
    try:
        return int(c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset)
    finally:
        c.close()


def _run_catching(proc: StreamProcessor, max_idle_s: float) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            proc.run(max_idle_s=max_idle_s)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, errors


def test_at_least_once_never_commits_past_a_failed_delivery(kafka: Broker, topic_factory: Any, group_factory: Any,
                                                            tiny_bundle: Path) -> None:
    """Defect 1: a DLQ record the DLQ topic refuses (larger than its max.message.bytes) stops the consumer;
    no path (main loop, revoke, close) may commit the later batches of that partition. With the cause
    removed, a restart gives every input its verdict."""
    topics = make_topics(topic_factory, partitions=1)
    admin = AdminClient(kafka.conf)
    admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topics.dlq, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])])[
        ConfigResource(ResourceType.TOPIC, topics.dlq)].result(30)
    bad = b'{"cpu_pct": "' + os.urandom(10_000).hex().encode() + b'"}'  # wrong_type, 20 KB, incompressible
    items = [sample_msg(i, float(i % 100)) for i in range(200)] + [(b"r1/bad", bad)] + \
        [sample_msg(i, float(i % 100)) for i in range(200, 600)]
    produce(kafka.conf, topics.samples, items)
    group = group_factory()
    first = StreamProcessor(_settings(kafka, topics, tiny_bundle, group, batch_size=16))
    t, errors = _run_catching(first, max_idle_s=10)
    t.join(180)
    assert not t.is_alive()
    assert errors and "not delivered" in str(errors[0]), errors
    assert _committed(kafka, group, topics.samples) <= 200  # the bad record is at offset 200

    admin.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topics.dlq, incremental_configs=[
        ConfigEntry("max.message.bytes", "1048588", incremental_operation=AlterConfigOpType.SET)])])[
        ConfigResource(ResourceType.TOPIC, topics.dlq)].result(30)
    second = StreamProcessor(_settings(kafka, topics, tiny_bundle, group, batch_size=16))
    t, errors = _run_catching(second, max_idle_s=8)
    t.join(180)
    assert not t.is_alive() and not errors, errors
    per_offset = _per_offset(kafka, topics.predictions)
    assert set(per_offset) == {(0, o) for o in range(601) if o != 200}
    dlq = [dict(m.headers() or []) for m in read_topic(kafka.conf, topics.dlq, idle_s=2)]
    assert [int(h["perfwatch.source.offset"]) for h in dlq] == [200]
    assert _committed(kafka, group, topics.samples) == 601


def test_aborted_transaction_leaves_no_trace_in_alert_state(kafka: Broker, topic_factory: Any,
                                                            group_factory: Any, tiny_bundle: Path) -> None:
    """Defect 2: the transaction holding the `firing` alert aborts once; the batch is re-processed, and a
    read_committed reader sees exactly one `firing` and one `resolved`."""
    topics = make_topics(topic_factory)
    cpus = [10.0] * 6 + [97.0] * 8 + [12.0] * 8
    produce(kafka.conf, topics.samples, [sample_msg(i, c, host="web-1") for i, c in enumerate(cpus)])
    holder: list[AbortOnceProducer] = []

    def make_producer(conf: dict[str, Any]) -> AbortOnceProducer:
        holder.append(AbortOnceProducer(
            conf, lambda topic, value: topic == topics.alerts and b'"state":"firing"' in (value or b"")))
        return holder[0]

    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), hysteresis="3/5", batch_size=4,
                                     guarantee="exactly-once"), producer_factory=make_producer)
    t, errors = _run_catching(proc, max_idle_s=5)
    t.join(120)
    assert not t.is_alive() and not errors, errors
    assert holder[0].injected == 1
    alerts = read_json(kafka.conf, topics.alerts, committed=True)
    assert [a["state"] for a in alerts] == ["firing", "resolved"]
    per_offset = _per_offset(kafka, topics.predictions, committed=True)
    assert len(per_offset) == len(cpus) and max(per_offset.values()) == 1
