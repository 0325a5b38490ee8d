"""publish, replay, generate, alerts and report, through the CLI, against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perfwatch.consumer.processor import StreamProcessor
from perfwatch.decoding import decode_sample
from perfwatch.kafkaio import read_topic
from perfwatch.sample import Sample
from perfwatch.settings import ConsumerSettings
from tests.kafka_fixtures import Broker
from tests.streams import make_topics, produce, run_in_thread, sample_msg

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOST_METRICS = ROOT / "examples" / "bitcoin-api-host-metrics.jsonl"


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, "COLUMNS": "200"})


def samples_in(kafka: Broker, topic: str) -> list[tuple[Sample, float]]:
    """Samples on a topic with their Kafka timestamps (seconds)."""
    return [(decode_sample(m.value()), m.timestamp()[1] / 1000) for m in read_topic(kafka.conf, topic, idle_s=2)]


def test_replay_real_locust_csv_joined_with_host_metrics(kafka: Broker, topic_factory, real_data: Path) -> None:
    topic = topic_factory("locust")
    csv_path = real_data / "locust-bitcoin-api" / "results_stats_history.csv"
    assert b"\r\r\n" in csv_path.read_bytes() and b"N/A" in csv_path.read_bytes()  # the quirks are there
    res = cli("replay", str(csv_path), "--host-metrics", str(HOST_METRICS), "--speed", "max", "--run-id", "loc-1",
              "--bootstrap-servers", kafka.bootstrap, "--samples-topic", topic, "--no-progress")
    assert res.returncode == 0, res.stderr
    got = [s for s, _ in samples_in(kafka, topic)]
    assert len(got) == 56 * 2  # every Locust row, joined with both hosts
    assert {s.host for s in got} == {"api-1", "db-1"} and {s.run_id for s in got} == {"loc-1"}
    with_p95 = [s for s in got if s.p95_ms is not None]
    assert with_p95 and len(with_p95) < len(got)  # N/A percentiles became "unknown", not zero
    assert max(s.rps or 0 for s in got) == pytest.approx(41.3)
    assert "rejected 0" in res.stderr


def test_locust_without_host_metrics_is_a_clear_error(real_data: Path) -> None:
    res = cli("replay", str(real_data / "locust-bitcoin-api" / "results_stats_history.csv"),
              "--bootstrap-servers", "127.0.0.1:1")
    assert res.returncode != 0


def _recording(path: Path, gaps: list[float], bad_line: int | None = None) -> list[Sample]:
    t = datetime(2026, 5, 1, tzinfo=UTC)
    samples, lines = [], []
    for i, gap in enumerate([0.0, *gaps]):
        t += timedelta(seconds=gap)
        s = Sample(run_id="rec", host=f"h{i % 2}", ts=t, cpu_pct=10 + i, mem_pct=20, disk_pct=30)
        samples.append(s)
        lines.append(s.model_dump_json())
    if bad_line is not None:
        lines.insert(bad_line - 1, '{"cpu_pct": 500, "mem_pct": 1, "disk_pct": 1}')
    path.write_text("\n".join(lines) + "\n")
    return samples


def test_replay_x10_keeps_relative_spacing(kafka: Broker, topic_factory, tmp_path: Path) -> None:
    topic = topic_factory("spacing")
    gaps = [1.0, 2.0, 1.5, 3.0, 1.0, 2.5, 4.0, 1.0]
    original = _recording(tmp_path / "run.jsonl", gaps)
    res = cli("replay", str(tmp_path / "run.jsonl"), "--speed", "10", "--bootstrap-servers", kafka.bootstrap,
              "--samples-topic", topic, "--no-progress")
    assert res.returncode == 0, res.stderr
    got = sorted(samples_in(kafka, topic), key=lambda x: x[0].ts)
    assert [s for s, _ in got] == original
    sent = [t for _, t in got]
    for i in range(1, len(sent)):
        expected = gaps[i - 1] / 10
        actual = sent[i] - sent[i - 1]
        assert abs(actual - expected) <= 0.1 * expected + 0.002, (i, actual, expected)  # 2 ms: timestamp resolution


def test_bad_recording_line_skip_or_fail(kafka: Broker, topic_factory, tmp_path: Path) -> None:
    rec = tmp_path / "bad.jsonl"
    good = _recording(rec, [1.0] * 5, bad_line=3)
    t1, t2 = topic_factory("skip"), topic_factory("fail")
    res = cli("replay", str(rec), "--speed", "max", "--bootstrap-servers", kafka.bootstrap, "--samples-topic", t1,
              "--no-progress")
    assert res.returncode == 0
    assert f"{rec}:3: out_of_range" in res.stderr
    assert len(samples_in(kafka, t1)) == len(good)
    res = cli("replay", str(rec), "--on-error", "fail", "--bootstrap-servers", kafka.bootstrap,
              "--samples-topic", t2, "--no-progress")
    assert res.returncode == 2 and f"{rec}:3" in res.stderr
    assert samples_in(kafka, t2) == []


def test_replay_from_topic_by_run_id(kafka: Broker, topic_factory) -> None:
    src, dst = topic_factory("past", partitions=3), topic_factory("again", partitions=3)
    items = []
    for i in range(120):
        run = "keep" if i % 3 else "other"
        items.append(sample_msg(i, float(i % 100), run=run, host=f"h{i % 4}"))
    produce(kafka.conf, src, items)
    res = cli("replay", f"kafka:{src}", "--from-run", "keep", "--run-id", "keep-replay", "--speed", "max",
              "--bootstrap-servers", kafka.bootstrap, "--samples-topic", dst, "--no-progress")
    assert res.returncode == 0, res.stderr
    original = [decode_sample(v) for _, v in items if decode_sample(v).run_id == "keep"]
    replayed = [s for s, _ in samples_in(kafka, dst)]
    assert len(replayed) == len(original) == 80
    assert {s.run_id for s in replayed} == {"keep-replay"}
    for host in {s.host for s in original}:
        assert [s.tags["i"] for s in replayed if s.host == host] == [s.tags["i"] for s in original if s.host == host]


def test_alerts_exit_codes_through_the_pipeline(kafka: Broker, topic_factory, group_factory,
                                                tiny_bundle: Path) -> None:
    topics = make_topics(topic_factory)
    produce(kafka.conf, topics.samples, [sample_msg(i, 97.0, run="hot") for i in range(5)]
            + [sample_msg(i, 12.0, run="calm") for i in range(5)])
    proc = StreamProcessor(ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=tiny_bundle,
                                            group_id=group_factory(), **topics.settings()))
    run_in_thread(proc, max_idle_s=3).join(60)
    common = ["--from-beginning", "--until-idle", "5", "--fail-on-alert", "--bootstrap-servers", kafka.bootstrap,
              "--alerts-topic", topics.alerts]
    hot = cli("alerts", "--run-id", "hot", "--json", *common)
    assert hot.returncode == 1
    lines = [json.loads(x) for x in hot.stdout.splitlines()]
    assert len(lines) == 5 and {a["label"] for a in lines} == {"HighLoad"}
    calm = cli("alerts", "--run-id", "calm", *common)
    assert calm.returncode == 0 and "0 alerts" in calm.stderr

    png = Path(topics.samples + ".png")
    rep = cli("report", "hot", "--out", str(png), "--bootstrap-servers", kafka.bootstrap, "--samples-topic",
              topics.samples, "--predictions-topic", topics.predictions, "--alerts-topic", topics.alerts)
    try:
        assert rep.returncode == 0, rep.stderr
        assert "run hot: 5 samples, 5 verdicts (LowLoad 0, MediumLoad 0, HighLoad 5), 5 alert episodes" in rep.stdout
        assert png.stat().st_size > 10_000
    finally:
        png.unlink(missing_ok=True)


def test_publish_live_and_record(kafka: Broker, topic_factory, tmp_path: Path) -> None:
    topic = topic_factory("live")
    rec = tmp_path / "live.jsonl"
    res = cli("publish", "--run-id", "live-1", "--host", "me", "--interval", "0.5", "--duration", "2.6",
              "--record", str(rec), "--bootstrap-servers", kafka.bootstrap, "--samples-topic", topic)
    assert res.returncode == 0, res.stderr
    got = [s for s, _ in samples_in(kafka, topic)]
    recorded = [Sample.model_validate_json(x) for x in rec.read_text().splitlines()]
    assert len(got) == len(recorded) == 5
    assert got == recorded and all(0 <= s.cpu_pct <= 100 for s in got)


def test_generate_publishes_synthetic_runs(kafka: Broker, topic_factory) -> None:
    topic = topic_factory("gen")
    res = cli("generate", "--runs", "2", "--hosts", "2", "--samples", "25", "--bootstrap-servers", kafka.bootstrap,
              "--samples-topic", topic, "--no-progress")
    assert res.returncode == 0, res.stderr
    got = [s for s, _ in samples_in(kafka, topic)]
    assert len(got) == 100 and len({s.run_id for s in got}) == 2
