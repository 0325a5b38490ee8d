"""What reads the topics back: replay from a topic, the alerts follower and the run report, against the
real broker. Each test counts samples, verdicts and alerts: nothing dropped, nothing counted twice."""

from __future__ import annotations

import importlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from perfwatch.verdict import Alert, ModelRef, SourceRef, Verdict
from tests.integration.test_producer import cli, samples_in
from tests.kafka_fixtures import Broker
from tests.streams import make_topics, produce, sample_msg, wait_for

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def _produce_at(conf: dict[str, Any], topic: str, items: list[tuple[bytes | None, bytes | None, int]]) -> None:
    """(key, value, Kafka timestamp in ms) records, in order, acknowledged."""
    p = Producer({**conf, "enable.idempotence": True})
    for key, value, ms in items:
        p.produce(topic, value=value, key=key, timestamp=ms)
    assert p.flush(30) == 0


def _seed_style_run(conf: dict[str, Any], topic: str) -> None:
    """Records the consumer accepts although the value alone does not say whose they are or when."""
    _produce_at(conf, topic, [
        (b"keep/h1", b"CPU Load: 50%, Memory: 60%, Disk: 30%", MS0),
        (b"keep/h2", b"CPU Load: 50%, Memory: 4GB, Disk: 30%", MS0 + 1000),  # 4 GB free of 16 GB: 75 % used
        (b"keep/h3", b'{"run_id": "keep", "host": "h3", "cpu_pct": 1, "mem_pct": 2, "disk_pct": 3}', MS0 + 2000),
        (b"other/h1", b"CPU Load: 10%, Memory: 10%, Disk: 10%", MS0 + 3000),  # another run
        (b"keep/h1", b"garbage", MS0 + 4000),  # dead-lettered by the consumer: not a sample
    ])


# -- #21.3: one decoding path ---------------------------------------------------------------------
def test_replay_from_topic_keeps_what_the_consumer_accepts(kafka: Broker, topic_factory) -> None:
    src, dst = topic_factory("seedstyle"), topic_factory("again")
    _seed_style_run(kafka.conf, src)
    res = cli("replay", f"kafka:{src}", "--from-run", "keep", "--mem-total-gb", "16", "--speed", "max",
              "--bootstrap-servers", kafka.bootstrap, "--samples-topic", dst, "--no-progress")
    assert res.returncode == 0, res.stderr
    got = sorted((s for s, _ in samples_in(kafka, dst)), key=lambda s: s.host)
    assert [(s.run_id, s.host) for s in got] == [("keep", "h1"), ("keep", "h2"), ("keep", "h3")]
    assert got[1].mem_pct == 75 and got[1].mem_free_gb == 4
    assert [s.ts for s in got] == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


def test_report_reads_samples_as_the_consumer_does(kafka: Broker, topic_factory, monkeypatch) -> None:
    from perfwatch.subscriber.report import collect

    topics = make_topics(topic_factory)
    _seed_style_run(kafka.conf, topics.samples)
    monkeypatch.setenv("PERFWATCH_MEM_TOTAL_GB", "16")
    data = collect(kafka.conf, "keep", topics.samples, topics.predictions, topics.alerts)
    assert sorted((s.host, s.ts) for s in data.samples) == [
        ("h1", T0), ("h2", T0 + timedelta(seconds=1)), ("h3", T0 + timedelta(seconds=2))]


# -- #21.2: replay from a topic ends at the end offsets -------------------------------------------
def _bounded(fn: Any, limit_s: float = 90.0) -> Any:
    """Run ``fn`` in a thread; a reader that never returns fails the test instead of hanging the suite."""
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), "the reader never reached the end of the topic"
    return box["value"]


def test_replay_reader_ends_after_a_transaction_marker(kafka: Broker, topic_factory) -> None:
    from confluent_kafka import TopicPartition

    from perfwatch.producer.recordings import read_topic_run

    topic = topic_factory("txn", partitions=1)
    p = Producer({**kafka.conf, "transactional.id": f"tx-{topic}"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, key=b"keep/h1", value=json.dumps(
            {"run_id": "keep", "host": "h1", "cpu_pct": i, "mem_pct": 1, "disk_pct": 1,
             "ts": (T0 + timedelta(seconds=i)).isoformat()}).encode())
    p.commit_transaction(30)  # the partition's last offset is now the commit marker
    probe = Consumer({**kafka.conf, "group.id": "probe", "isolation.level": "read_committed"})
    try:  # the marker is written after commit_transaction returns; until then the stable end is 0
        assert wait_for(lambda: probe.get_watermark_offsets(TopicPartition(topic, 0), 10, cached=False)[1] == 11)
    finally:
        probe.close()
    got = _bounded(lambda: read_topic_run(kafka.conf, topic, "keep"))
    assert [s.cpu_pct for s in got] == list(range(10))


def test_replay_reader_reads_a_trimmed_topic(kafka: Broker, topic_factory) -> None:
    from confluent_kafka import TopicPartition

    from perfwatch.producer.recordings import read_topic_run

    topic = topic_factory("trimmed", partitions=1)
    _produce_at(kafka.conf, topic, [(b"keep/h1", json.dumps(
        {"run_id": "keep", "host": "h1", "cpu_pct": i, "mem_pct": 1, "disk_pct": 1}).encode(), MS0 + i)
        for i in range(20)])
    admin = AdminClient(kafka.conf)
    for fut in admin.delete_records([TopicPartition(topic, 0, 8)]).values():
        fut.result()  # retention removed offsets 0..7
    got = _bounded(lambda: read_topic_run(kafka.conf, topic, "keep"))
    assert [s.cpu_pct for s in got] == list(range(8, 20))


# -- #21.7: the alerts follower -------------------------------------------------------------------
def _verdict(host: str, ts: datetime, label: str, offset: int, run: str = "r", cpu: float = 50.0,
             rps: float | None = None) -> Verdict:
    return Verdict(run_id=run, host=host, ts=ts, label=label, confidence=0.9, scores={label: 0.9}, cpu_pct=cpu,
                   mem_pct=40, disk_pct=30, rps=rps, model=ModelRef(id="m", sha256="0" * 64),
                   source=SourceRef(topic="s", partition=0, offset=offset), detected_at=ts)


def _alert(host: str, ts: datetime, state: str | None, offset: int, run: str = "r") -> Alert:
    return Alert(**_verdict(host, ts, "HighLoad", offset, run).__dict__, state=state)


def test_alerts_follower_skips_and_counts_unreadable_records(kafka: Broker, topic_factory) -> None:
    from perfwatch.subscriber.alerts import AlertFilter, follow

    topic = topic_factory("alerts", partitions=1)
    good = [_alert("h1", T0 + timedelta(seconds=i), "firing", i).model_dump_json().encode() for i in range(3)]
    _produce_at(kafka.conf, topic, [
        (b"r/h1", good[0], MS0), (b"r/h1", None, MS0),  # a tombstone
        (b"r/h1", good[1], MS0), (b"r/h1", b'{"run_id": "r", "host": "h1", "level": "high"}', MS0),  # old schema
        (b"r/h1", b"\xff\xfe", MS0), (b"r/h1", good[2], MS0)])
    seen: list[Alert] = []
    result = follow(kafka.conf, topic, seen.append, from_beginning=True, flt=AlertFilter(), until_idle_s=2)
    assert len(seen) == 3 and result.matched == 3 and result.skipped == 3


class _SlowStart:
    """The real consumer with its assignment taking effect 2 s late: librdkafka resolves a logical start
    offset (OFFSET_END) asynchronously after assign(); this widens that window so a test can see it."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._c = Consumer(conf)
        self._pending: Any = None

    def assign(self, partitions: Any) -> None:
        self._pending = partitions

    def consume(self, *a: Any, **k: Any) -> Any:
        if self._pending is not None:
            time.sleep(2.0)
            self._c.assign(self._pending)
            self._pending = None
        return self._c.consume(*a, **k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


def test_alerts_follower_is_ready_only_once_positioned(kafka: Broker, topic_factory, monkeypatch) -> None:
    from perfwatch.subscriber import alerts
    from perfwatch.subscriber.alerts import AlertFilter, follow

    monkeypatch.setattr(alerts, "Consumer", _SlowStart)
    topic = topic_factory("alerts", partitions=1)
    _produce_at(kafka.conf, topic, [(b"r/h1", _alert("h1", T0, "firing", 0).model_dump_json().encode(), MS0)])
    ready, seen = threading.Event(), []
    t = threading.Thread(target=lambda: seen.append(follow(
        kafka.conf, topic, lambda a: None, from_beginning=False, flt=AlertFilter(), until_idle_s=4, ready=ready)))
    t.start()
    assert ready.wait(30)
    _produce_at(kafka.conf, topic, [(b"r/h1", _alert("h1", T0, "firing", 1).model_dump_json().encode(), MS0)])
    t.join(60)
    assert not t.is_alive()
    assert getattr(seen[0], "matched", seen[0]) == 1  # the alert sent after "ready", not the old one


# -- #21.8: the report's counts -------------------------------------------------------------------
def _two_episodes(conf: dict[str, Any], topics: Any, redeliver: bool = True) -> list[Verdict]:
    """Host h1 goes HighLoad twice an hour apart; every verdict is delivered twice (at-least-once)."""
    verdicts, alerts = [], []
    for episode, start in enumerate((T0, T0 + timedelta(hours=1))):
        for i in range(6):
            ts = start + timedelta(seconds=10 * i)
            label = "HighLoad" if 1 <= i <= 3 else "LowLoad"
            off = 100 * episode + i
            verdicts.append(_verdict("h1", ts, label, off, cpu=95 if label == "HighLoad" else 20, rps=10 + i))
            if i in (2, 4):
                alerts.append(_alert("h1", ts, "firing" if i == 2 else "resolved", off))
    copies = 2 if redeliver else 1
    produce(conf, topics.predictions, [(b"r/h1", v.model_dump_json()) for v in verdicts] * copies)
    produce(conf, topics.alerts, [(b"r/h1", a.model_dump_json()) for a in alerts] * copies)
    return verdicts


def test_report_dedupes_redeliveries_and_counts_episodes(kafka: Broker, topic_factory) -> None:
    from perfwatch.subscriber.report import collect, summarize

    topics = make_topics(topic_factory)
    verdicts = _two_episodes(kafka.conf, topics)
    data = collect(kafka.conf, "r", topics.samples, topics.predictions, topics.alerts)
    assert len(data.verdicts) == len(verdicts) and len(data.alerts) == 4
    text = summarize(data)
    episodes = [line for line in text.splitlines() if "episode" in line and "→" in line]
    assert len(episodes) == 2, text
    assert "2026-05-01 08:00:20 UTC" in text and "2026-05-01 09:00:40 UTC" in text, text


def test_report_prints_one_zone_with_date(kafka: Broker, topic_factory) -> None:
    from perfwatch.subscriber.report import collect, summarize

    topics = make_topics(topic_factory)
    plus2 = timezone(timedelta(hours=2))
    v = _verdict("h1", T0.astimezone(plus2), "HighLoad", 0)
    produce(kafka.conf, topics.predictions, [(b"r/h1", v.model_dump_json())])
    produce(kafka.conf, topics.alerts, [(b"r/h1", _alert("h1", T0.astimezone(plus2), "firing", 0).model_dump_json())])
    text = summarize(collect(kafka.conf, "r", topics.samples, topics.predictions, topics.alerts))
    assert "2026-05-01 08:00:00 UTC" in text and "10:00:00" not in text, text


class _SlowBroker:
    """The real consumer behind a slow broker: nothing arrives for the first 3 s (a leader moving, say)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._c = Consumer(conf)
        self._until = time.monotonic() + 3.0

    def consume(self, num_messages: int = 1, timeout: float = -1) -> Any:
        if time.monotonic() < self._until:
            time.sleep(min(timeout if timeout > 0 else 1.0, 1.0))
            return []
        return self._c.consume(num_messages, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


def test_report_reads_to_the_end_offsets_not_to_a_quiet_spell(kafka: Broker, topic_factory, monkeypatch) -> None:
    from perfwatch.subscriber.report import collect

    for name in ("perfwatch.kafkaio", "perfwatch.topicread"):
        try:
            monkeypatch.setattr(importlib.import_module(name), "Consumer", _SlowBroker)
        except ImportError:
            pass
    topics = make_topics(topic_factory)
    verdicts = _two_episodes(kafka.conf, topics, redeliver=False)
    data = collect(kafka.conf, "r", topics.samples, topics.predictions, topics.alerts)
    assert len(data.verdicts) == len(verdicts) and len(data.alerts) == 4


# -- #19.1: the figure ----------------------------------------------------------------------------
def test_report_figure_has_load_panel_hosts_legend_and_episode_spans(kafka: Broker, topic_factory,
                                                                      tmp_path: Path) -> None:
    from perfwatch.subscriber.report import collect
    from perfwatch.subscriber.report_figure import build_figure

    topics = make_topics(topic_factory)
    _two_episodes(kafka.conf, topics)
    produce(kafka.conf, topics.predictions, [(b"r/h2", _verdict("h2", T0, "MediumLoad", 7).model_dump_json())])
    fig = build_figure(collect(kafka.conf, "r", topics.samples, topics.predictions, topics.alerts))
    (load,) = [ax for ax in fig.axes if ax.get_gid() == "load"]
    hosts = [ax for ax in fig.axes if str(ax.get_gid()).startswith("host:")]
    assert fig.axes.index(load) == 0 and [ax.get_gid() for ax in hosts] == ["host:h1", "host:h2"]
    assert any("RPS" in line.get_label() for line in load.get_lines())
    legend_texts = {t.get_text() for t in fig.legends[0].get_texts()} if fig.legends else set()
    for label in ("LowLoad", "MediumLoad", "HighLoad"):
        assert any(label in t for t in legend_texts), legend_texts
    spans = [p for p in hosts[0].patches if p.get_gid() == "alert-episode"]
    assert len(spans) == 2
    assert not [p for p in hosts[1].patches if p.get_gid() == "alert-episode"]
    assert "UTC" in hosts[-1].get_xlabel()


def test_report_without_verdicts_says_whether_a_consumer_ran_or_is_behind(kafka: Broker, topic_factory,
                                                                          group_factory) -> None:
    from confluent_kafka import TopicPartition

    from perfwatch.subscriber.report import collect, summarize

    topics = make_topics(topic_factory, partitions=1)
    produce(kafka.conf, topics.samples, [sample_msg(i, 50.0, run="late", host="h1") for i in range(4)])
    group = group_factory()
    data = collect(kafka.conf, "late", topics.samples, topics.predictions, topics.alerts, group_id=group)
    assert len(data.samples) == 4 and not data.verdicts
    assert "no consumer has run" in summarize(data)
    c = Consumer({**kafka.conf, "group.id": group, "enable.auto.commit": False})
    try:  # the group has processed two of the four samples
        c.commit(offsets=[TopicPartition(topics.samples, 0, 2)], asynchronous=False)
    finally:
        c.close()
    data = collect(kafka.conf, "late", topics.samples, topics.predictions, topics.alerts, group_id=group)
    assert "the consumer is behind" in summarize(data)
