"""The stream processor against the real broker: every message accounted for."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perfwatch.consumer.processor import StreamProcessor
from perfwatch.kafkaio import read_topic
from perfwatch.labels import HIGH
from perfwatch.runtime.model import BundleModel
from perfwatch.settings import ConsumerSettings
from perfwatch.template import render
from tests.kafka_fixtures import Broker
from tests.streams import (
    consume_cli,
    make_topics,
    produce,
    read_json,
    run_in_thread,
    sample_msg,
    total,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MALFORMED = [
    b"{not json",
    json.dumps({"cpu_pct": math.nan, "mem_pct": 1, "disk_pct": 1}).encode(),
    b'{"cpu_pct": 150, "mem_pct": 1, "disk_pct": 1}',
    b'{"mem_pct": 1, "disk_pct": 1}',
    b"\x00\x01\x02 binary \x07",
    b"\xff\xfe not utf-8",
    b'{"cpu_pct": 1, "mem_pct": 1, "disk_pct": 1, "pad": "' + b"x" * 100_000 + b'"}',
    b'{"cpu_pct": "ninety", "mem_pct": 1, "disk_pct": 1}',
    b"CPU Load: 50%, Memory: 2GB, Disk: 10%",
    b"",
    b"[1, 2, 3]",
]


def _settings(kafka: Broker, topics, bundle: Path, group: str, **kw) -> ConsumerSettings:  # noqa: ANN001
    return ConsumerSettings(bootstrap_servers=kafka.bootstrap, bundle=bundle, group_id=group,
                            **topics.settings(), **kw)


def test_5000_valid_and_500_malformed(kafka: Broker, topic_factory, group_factory, tiny_bundle: Path) -> None:
    topics = make_topics(topic_factory)
    rng = np.random.default_rng(1)
    items, bad_positions = [], set()
    for i in range(5500):
        if i % 11 == 10:  # 500 malformed, interleaved
            items.append((f"bad/{i}".encode(), MALFORMED[(i // 11) % len(MALFORMED)]))
            bad_positions.add(i)
        else:
            cpu, mem, disk = (float(x) for x in rng.uniform(0, 100, 3).round(1))
            items.append(sample_msg(i, cpu, mem, disk))
    produce(kafka.conf, topics.samples, items)
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=128))
    t = run_in_thread(proc, max_idle_s=6)
    t.join(180)
    assert not t.is_alive()
    inputs = {(m.partition(), m.offset()): m.value() for m in read_topic(kafka.conf, topics.samples, idle_s=2)}
    bad_offsets = {k for k, v in inputs.items() if v in MALFORMED}
    good_offsets = set(inputs) - bad_offsets
    assert len(good_offsets) == 5000 and len(bad_offsets) == 500

    verdicts = read_json(kafka.conf, topics.predictions)
    assert len(verdicts) == 5000
    assert {(v["source"]["partition"], v["source"]["offset"]) for v in verdicts} == good_offsets
    alerts = read_json(kafka.conf, topics.alerts)
    high = {(v["source"]["partition"], v["source"]["offset"]) for v in verdicts if v["label"] == HIGH}
    assert high and {(a["source"]["partition"], a["source"]["offset"]) for a in alerts} == high

    dlq = list(read_topic(kafka.conf, topics.dlq, idle_s=2))
    assert len(dlq) == 500
    reasons = Counter()
    for m in dlq:
        h = dict(m.headers())
        reasons[h["perfwatch.error.reason"].decode()] += 1
        assert h["perfwatch.error.message"]
        src = (int(h["perfwatch.source.partition"]), int(h["perfwatch.source.offset"]))
        assert src in bad_offsets
        if h["perfwatch.error.reason"] != b"oversized":
            assert m.value() == inputs[src] or (m.value() is None and inputs[src] == b"")
    assert set(reasons) >= {"bad_json", "not_finite", "out_of_range", "missing_field", "binary", "oversized",
                            "wrong_type", "gb_without_total", "empty", "not_utf8"}
    assert proc.stats.verdicts == 5000 and proc.stats.dlq == 500


def test_verdicts_equal_offline_predictions(kafka: Broker, topic_factory, group_factory, tiny_bundle: Path) -> None:
    """fp32 verdicts in the stream = the bundle run one sample at a time (no batching/padding drift)."""
    topics = make_topics(topic_factory)
    rng = np.random.default_rng(2)
    metrics = [tuple(float(x) for x in rng.uniform(0, 100, 3).round(2)) for _ in range(600)]
    produce(kafka.conf, topics.samples, [sample_msg(i, *m) for i, m in enumerate(metrics)])
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), precision="fp32", batch_size=64))
    run_in_thread(proc, max_idle_s=4).join(120)
    offline = BundleModel(tiny_bundle, "fp32")
    verdicts = read_json(kafka.conf, topics.predictions)
    assert len(verdicts) == 600
    for v in verdicts:
        probs = offline.predict([render(v["cpu_pct"], v["mem_pct"], v["disk_pct"])])[0]
        assert v["label"] == offline.labels[int(probs.argmax())]
        assert max(abs(v["scores"][lab] - float(p)) for lab, p in zip(offline.labels, probs, strict=True)) < 1e-5


def test_repeated_inputs_run_the_model_once_and_get_the_models_verdicts(kafka: Broker, topic_factory, group_factory,
                                                                        tiny_bundle: Path) -> None:
    """600 samples over 60 distinct model inputs (their fractions differ): the response cache runs the model
    on each input once, and every verdict is still the one the bundle gives that input alone (fp32)."""
    topics = make_topics(topic_factory)
    rng = np.random.default_rng(3)
    whole = [tuple(int(x) for x in rng.integers(0, 100, 3)) for _ in range(60)]
    metrics = [tuple(float(v) + float(rng.uniform(0, 0.99)) for v in whole[i % 60]) for i in range(600)]
    produce(kafka.conf, topics.samples, [sample_msg(i, *m) for i, m in enumerate(metrics)])
    model = BundleModel(tiny_bundle, "fp32")
    rows: list[int] = []
    real_run = model.run
    model.run = lambda enc: rows.append(len(enc)) or real_run(enc)  # type: ignore[method-assign]
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), precision="fp32", batch_size=64),
                           model=model)
    run_in_thread(proc, max_idle_s=4).join(120)
    verdicts = read_json(kafka.conf, topics.predictions)
    assert len(verdicts) == 600
    # Misses only in the batches prepared before the first answers were stored (a few: two workers, parts
    # finishing one by one; each batch runs its distinct inputs once — the clean-clone run saw two), then
    # every sample is a hit. Without the cache the model would run 600 rows.
    assert sum(rows) <= 4 * 60, rows
    assert proc.stats.cache_lookups == 600 and proc.stats.cache_hits >= 600 - 4 * 64
    offline = BundleModel(tiny_bundle, "fp32")
    for v in verdicts:
        probs = offline.predict([render(v["cpu_pct"], v["mem_pct"], v["disk_pct"])])[0]
        assert v["label"] == offline.labels[int(probs.argmax())]
        assert max(abs(v["scores"][lab] - float(p)) for lab, p in zip(offline.labels, probs, strict=True)) < 1e-5


class _SlowFirstPart:
    """The real model, but the first part of every batch split over the workers takes longer, so later
    parts and later batches really finish first."""

    def __init__(self, model: BundleModel) -> None:
        self.model = model
        self.labels = model.labels
        self.model_id, self.manifest = model.model_id, model.manifest
        self.template_version = model.template_version
        self._lock = threading.Lock()
        self.started: list[int] = []
        self.finished: list[int] = []

    def encode(self, texts: list[str]) -> Any:
        return self.model.encode(texts)

    def run(self, enc: Any) -> np.ndarray:
        with self._lock:
            call = len(self.started)
            self.started.append(call)
        if call % 3 == 0:
            time.sleep(0.05)
        probs = self.model.run(enc)
        with self._lock:
            self.finished.append(call)
        return probs


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_batches_finishing_out_of_order_still_leave_in_source_order(kafka: Broker, topic_factory, group_factory,
                                                                    tiny_bundle: Path, guarantee: str) -> None:
    """Batches split over 3 workers, every third part slowed: parts and batches finish out of order, and
    verdicts still leave once each, in source order per key."""
    topics = make_topics(topic_factory)
    n = 1500
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100), host=f"h{i % 13}") for i in range(n)])
    s = _settings(kafka, topics, tiny_bundle, group_factory(), batch_size=48, inference_workers=3, threads=1,
                  guarantee=guarantee)
    model = _SlowFirstPart(BundleModel(tiny_bundle, s.precision, 1))
    proc = StreamProcessor(s, model)  # type: ignore[arg-type]
    run_in_thread(proc, max_idle_s=5).join(180)
    assert model.finished != sorted(model.finished), "no part finished out of order: the test proves nothing"
    verdicts = read_json(kafka.conf, topics.predictions, committed=True)
    per_offset = Counter((v["source"]["partition"], v["source"]["offset"]) for v in verdicts)
    assert len(per_offset) == n and max(per_offset.values()) == 1
    by_host: dict[str, list[int]] = {}
    for v in verdicts:
        by_host.setdefault(v["host"], []).append(v["source"]["offset"])
    for host, offsets in by_host.items():
        assert offsets == sorted(offsets), host


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_batches_in_inference_side_by_side_emit_in_source_order(kafka: Broker, topic_factory, group_factory,
                                                                tiny_bundle: Path, guarantee: str) -> None:
    """Three small batches in inference at once finish in any order; verdicts still leave in the order
    their samples were consumed (per host), once each, which hysteresis and readers depend on."""
    topics = make_topics(topic_factory)
    n = 3000
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100), host=f"h{i % 13}") for i in range(n)])
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), batch_size=8,
                                     inference_workers=3, threads=1, guarantee=guarantee))
    assert proc.workers == 3
    run_in_thread(proc, max_idle_s=4).join(180)
    verdicts = read_json(kafka.conf, topics.predictions, committed=True)
    per_offset = Counter((v["source"]["partition"], v["source"]["offset"]) for v in verdicts)
    assert len(per_offset) == n and max(per_offset.values()) == 1
    by_host: dict[str, list[int]] = {}
    for v in verdicts:  # one host = one key = one partition in and out: read order is append order
        by_host.setdefault(v["host"], []).append(v["source"]["offset"])
    assert len(by_host) == 13
    for host, offsets in by_host.items():
        assert offsets == sorted(offsets), host
    assert proc.stats.batches >= n // 8


def test_hysteresis_fires_once_and_resolves_once(kafka: Broker, topic_factory, group_factory,
                                                 tiny_bundle: Path) -> None:
    topics = make_topics(topic_factory)
    cpus = [10.0] * 6 + [97.0] * 8 + [12.0] * 8
    produce(kafka.conf, topics.samples, [sample_msg(i, c, host="web-1") for i, c in enumerate(cpus)])
    proc = StreamProcessor(_settings(kafka, topics, tiny_bundle, group_factory(), hysteresis="3/5", batch_size=4))
    run_in_thread(proc, max_idle_s=4).join(60)
    alerts = read_json(kafka.conf, topics.alerts)
    assert [a["state"] for a in alerts] == ["firing", "resolved"]
    assert alerts[0]["host"] == "web-1" and alerts[0]["label"] == HIGH


@pytest.mark.parametrize("guarantee", ["exactly-once", "at-least-once"])
def test_sigkill_and_restart(kafka: Broker, topic_factory, group_factory, tiny_bundle: Path, guarantee: str) -> None:
    topics = make_topics(topic_factory)
    n = 4000
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100)) for i in range(n)])
    group = group_factory()
    stable = ["--transactional-id", f"{group}-0"] if guarantee == "exactly-once" else []
    first = consume_cli(kafka.bootstrap, topics, tiny_bundle, "--group-id", group, "--guarantee", guarantee,
                        "--batch-size", "32", *stable)
    try:
        assert wait_for(lambda: total(kafka.conf, topics.predictions) > 800, timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert total(kafka.conf, topics.predictions) < n + 100  # killed mid-stream, not after the end
    second = consume_cli(kafka.bootstrap, topics, tiny_bundle, "--group-id", group, "--guarantee", guarantee,
                         "--batch-size", "32", "--until-idle", "6", *stable)
    out, _ = second.communicate(timeout=240)
    assert second.returncode == 0, out[-2000:]
    verdicts = read_json(kafka.conf, topics.predictions, committed=True)
    per_offset = Counter((v["source"]["partition"], v["source"]["offset"]) for v in verdicts)
    assert len(per_offset) == n  # none missing
    if guarantee == "exactly-once":
        assert max(per_offset.values()) == 1 and len(verdicts) == n
    else:
        print(f"at-least-once: {len(verdicts) - n} duplicates after SIGKILL")


def test_two_consumers_one_leaves_mid_stream(kafka: Broker, topic_factory, group_factory, tiny_bundle: Path) -> None:
    topics = make_topics(topic_factory, partitions=6)
    group = group_factory()
    a = StreamProcessor(_settings(kafka, topics, tiny_bundle, group, batch_size=16))
    b = StreamProcessor(_settings(kafka, topics, tiny_bundle, group, batch_size=16))
    ta, tb = run_in_thread(a, max_idle_s=8), run_in_thread(b, max_idle_s=8)
    assert a.ready.wait(30) and b.ready.wait(30)
    n = 6000
    produce(kafka.conf, topics.samples, [sample_msg(i, float(i % 100), host=f"h{i % 60}") for i in range(n)])
    assert wait_for(lambda: a.stats.verdicts > 300 and b.stats.verdicts > 300, timeout=60)
    b.stop()  # leaves the group mid-stream: its partitions move to a
    tb.join(60)
    ta.join(180)
    assert b.stats.verdicts < n
    per_offset = Counter((v["source"]["partition"], v["source"]["offset"])
                         for v in read_json(kafka.conf, topics.predictions))
    assert len(per_offset) == n  # none missing
    # b left gracefully: it finished and committed its batches on revoke, so a starts where b stopped
    assert sum(per_offset.values()) == n, f"{sum(per_offset.values()) - n} duplicates after a graceful leave"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perfwatch.app.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_consume_help_documents_every_setting() -> None:
    res = _cli("consume", "--help")
    assert res.returncode == 0
    for name in ConsumerSettings.model_fields:
        assert "--" + name.replace("_", "-") in res.stdout, name
        assert "PERFWATCH_" + name.upper() in res.stdout, name


def test_wrong_bootstrap_and_missing_bundle_fail_in_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    res = _cli("consume", "--bootstrap-servers", "127.0.0.1:1", "--bundle", str(tiny_bundle), timeout=60)
    assert res.returncode != 0
    assert "cannot reach Kafka at 127.0.0.1:1" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = _cli("consume", "--bundle", str(tmp_path / "nope"))
    assert res.returncode != 0 and "no model bundle" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
