"""The consumer's guarantees under faults (issue #15), each driven against the real broker with the real
clients wrapped to inject the fault."""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from perfwatch.consumer.processor import StreamProcessor
from perfwatch.kafkaio import ensure_topics, read_topic
from perfwatch.settings import ConsumerSettings
from tests.integration.faults import (
    AbortOnceProducer,
    HangingOffsetsProducer,
    HeldAcksProducer,
    OversizeProducer,
    RebalanceRecorder,
    StallOnPauseConsumer,
)
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




def _set_topic_config(kafka: Broker, topic: str, key: str, value: str) -> None:
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    admin = AdminClient(kafka.conf)  # kept alive until the future resolves
    admin.incremental_alter_configs([res])[res].result(30)


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
    _set_topic_config(kafka, topics.dlq, "max.message.bytes", "2000")
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

    _set_topic_config(kafka, topics.dlq, "max.message.bytes", "1048588")
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


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_undeliverable_output_goes_to_the_dlq_and_the_stream_goes_on(
        kafka: Broker, topic_factory: Any, group_factory: Any, tiny_bundle: Path, guarantee: str) -> None:
    """Defect 3: one input's verdict can never be delivered (the broker refuses it). After bounded retries
    the input is in the DLQ with the output error as its reason, the metric counts one, and every other
    input has its verdict (once each under exactly-once)."""
    topics = make_topics(topic_factory)
    n = 300
    items = [sample_msg(i, float(i % 100)) for i in range(n)]
    items.insert(150, sample_msg(n, 20.0, host="poison"))
    _set_topic_config(kafka, topics.predictions, "max.message.bytes", "500000")  # verdict batches are far smaller
    produce(kafka.conf, topics.samples, items)
    eos = guarantee == "exactly-once"

    def make_producer(conf: dict[str, Any]) -> OversizeProducer:
        return OversizeProducer(conf, lambda topic, value: topic == topics.predictions
                                and b'"host":"poison"' in (value or b""))

    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=16,
                                     guarantee=guarantee), producer_factory=make_producer)
    t, errors = _run_catching(proc, max_idle_s=8)
    t.join(150)
    proc.stop()
    t.join(60)
    assert not errors, errors
    inputs = {(m.partition(), m.offset()): m.key() for m in read_topic(kafka.conf, topics.samples, idle_s=2)}
    poison = next(k for k, key in inputs.items() if key == b"r1/poison")
    per_offset = _per_offset(kafka, topics.predictions, committed=eos)
    assert set(per_offset) == set(inputs) - {poison}
    if eos:
        assert max(per_offset.values()) == 1
    dlq = [dict(m.headers() or []) for m in read_topic(kafka.conf, topics.dlq, idle_s=2, read_committed=eos)]
    assert [(int(h["perfwatch.source.partition"]), int(h["perfwatch.source.offset"])) for h in dlq] == [poison]
    assert dlq[0]["perfwatch.error.reason"] == b"undeliverable"
    assert b"too large" in dlq[0]["perfwatch.error.message"].lower(), dlq[0]
    assert proc.metrics.registry.get_sample_value("perfwatch_undeliverable_total") == 1


def test_far_future_timestamp_becomes_a_dead_letter(kafka: Broker, topic_factory: Any, group_factory: Any,
                                                    tiny_bundle: Path) -> None:
    """Defect 5: a record stamped past year 9999 (a topic that allows any timestamp) is a DLQ record with
    its reason; the loop goes on and every other sample gets its verdict."""
    topics = make_topics(topic_factory)
    samples = f"samples-{uuid.uuid4().hex[:10]}"
    ensure_topics(kafka.conf, [samples], partitions=3,
                  config={"message.timestamp.after.max.ms": str(2**63 - 1), "message.timestamp.type": "CreateTime"})
    topics = Topics(samples, topics.predictions, topics.alerts, topics.dlq)
    p = Producer(kafka.conf)
    year_10000 = 253_402_300_800_000 + 86_400_000  # ms: 10000-01-02
    for i in range(100):
        key, value = sample_msg(i, float(i))
        p.produce(samples, value, key, timestamp=year_10000 if i == 40 else 0)
    assert p.flush(30) == 0
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=16))
    t, errors = _run_catching(proc, max_idle_s=6)
    t.join(120)
    assert not t.is_alive() and not errors, errors
    assert len(_per_offset(kafka, topics.predictions)) == 99
    dlq = [dict(m.headers() or []) for m in read_topic(kafka.conf, topics.dlq, idle_s=2)]
    assert len(dlq) == 1 and dlq[0]["perfwatch.error.reason"] == b"bad_timestamp"


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:  # noqa: S310
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_hung_transactional_call_fails_liveness_and_the_watchdog_exits(
        kafka: Broker, topic_factory: Any, group_factory: Any, tiny_bundle: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Defect 6: send_offsets_to_transaction blocks past its timeout (the librdkafka bug). /healthz turns
    503 once the loop has not turned for liveness_s, and the watchdog ends the process with a thread dump
    once the call passes its deadline (os._exit is replaced here by a recorder that also unblocks the
    call). A restarted member (same group, so the same default transactional id) fences the stuck one and
    finishes the stream: 0 lost, 0 duplicated."""
    caplog.set_level(logging.CRITICAL, "perfwatch.consumer")
    topics = make_topics(topic_factory)
    n = 400
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100)) for i in range(n)])
    holder: list[HangingOffsetsProducer] = []
    exits: list[int] = []

    def make_producer(conf: dict[str, Any]) -> HangingOffsetsProducer:
        holder.append(HangingOffsetsProducer(conf, hang_at=3))
        return holder[0]

    def fake_exit(code: int) -> None:
        exits.append(code)
        holder[0].release.set()

    monkeypatch.setattr(os, "_exit", fake_exit)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # One transaction per batch (checkpoint_ms 0): 25 of them, so the third call is always reached. With the
    # default 100 ms checkpoints a fast machine finished all 400 samples in two transactions (CI, stop 24).
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=16,
                                     guarantee="exactly-once", metrics_port=port, liveness_s=3, checkpoint_ms=0),
                           producer_factory=make_producer)
    t, errors = _run_catching(proc, max_idle_s=6)
    try:
        assert wait_for(lambda: holder and holder[0].calls >= 3, timeout=60)
        assert wait_for(lambda: _healthz(port) == 503, timeout=30), "liveness never failed while the loop hung"
        assert wait_for(lambda: bool(exits), timeout=60), "the watchdog never ended the hung process"
    finally:
        holder[0].release.set()
        proc.stop()  # in production the process is gone; here it finds itself fenced or stops
        t.join(60)
    assert exits == [70]
    dump = "\n".join(r.getMessage() for r in caplog.records if "passed its deadline" in r.getMessage())
    assert "send_offsets_to_transaction" in dump and "Thread" in dump
    restarted = StreamProcessor(_settings(kafka, topics, tiny_bundle, proc.s.group_id, batch_size=16,
                                          guarantee="exactly-once"))
    t, errors = _run_catching(restarted, max_idle_s=8)
    t.join(180)
    assert not t.is_alive() and not errors, errors
    per_offset = _per_offset(kafka, topics.predictions, committed=True)
    assert len(per_offset) == n and max(per_offset.values()) == 1


def test_pathological_seed_lines_never_stall_the_group(kafka: Broker, topic_factory: Any, group_factory: Any,
                                                       tiny_bundle: Path) -> None:
    """Defect 4 (the parser's fix is perfwatch/seedtext.py): 4 seed-text lines of 64 KB that made the old
    pattern backtrack, then 100 valid samples. All 100 verdicts arrive, the 4 lines are dead letters, and
    the group never rebalances (max.poll.interval.ms lowered to 30 s so a slow parse shows as a rebalance)."""
    topics = make_topics(topic_factory, partitions=1)
    head = b"CPU Load: 1%, Memory: 1%, Disk: 1"  # then spaces and a stray character: no match, found late
    bad = [head + b" " * (64 * 1024 - len(head) - 1) + b"x"] * 4
    produce(kafka.conf, topics.samples, [(b"r1/h", v) for v in bad] + [sample_msg(i, 10.0) for i in range(100)])
    recorder: list[RebalanceRecorder] = []

    def make_consumer(conf: dict[str, Any]) -> RebalanceRecorder:
        recorder.append(RebalanceRecorder({**conf, "max.poll.interval.ms": 30_000}))
        return recorder[0]

    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=16,
                                     max_message_bytes=128 * 1024), consumer_factory=make_consumer)
    t = run_in_thread(proc, max_idle_s=6)
    wait_for(lambda: len(_per_offset(kafka, topics.predictions)) >= 100, timeout=240, every=3)
    proc.stop()
    t.join(120)
    assert len(_per_offset(kafka, topics.predictions)) == 100
    assert len(list(read_topic(kafka.conf, topics.dlq, idle_s=2))) == 4
    assert recorder[0].events[:1] == ["assign"] and "lost" not in recorder[0].events
    assert recorder[0].events.count("assign") == 1, recorder[0].events
