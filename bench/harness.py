"""The one harness of the benchmarks, the chaos scenarios and the reliability tests: fresh topics, paced
idempotent produce, consumer processes, exact counting by source offset, and local brokers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from perfwatch.kafkaio import end_offsets, ensure_topics, headers_of, read_topic
from perfwatch.sample import Sample
from perfwatch.tooling import LocalKafka, SaslUser


@dataclass
class Result:
    scenario: str
    messages: int
    lost: int
    duplicated: int
    dlq: int
    ok: bool
    note: str = ""


@dataclass
class Topics:
    samples: str
    predictions: str
    alerts: str
    dlq: str

    @classmethod
    def fresh(cls, conf: dict[str, Any], partitions: int = 3, replication: int = 1) -> Topics:
        tag = uuid.uuid4().hex[:8]
        t = cls(f"chaos-{tag}.samples", f"chaos-{tag}.predictions", f"chaos-{tag}.alerts", f"chaos-{tag}.dlq")
        ensure_topics(conf, [t.samples, t.predictions, t.alerts, t.dlq], partitions, replication)
        return t

    def flags(self) -> list[str]:
        return ["--samples-topic", self.samples, "--predictions-topic", self.predictions,
                "--alerts-topic", self.alerts, "--dlq-topic", self.dlq]

    def settings(self) -> dict[str, Any]:
        return {"samples_topic": self.samples, "predictions_topic": self.predictions,
                "alerts_topic": self.alerts, "dlq_topic": self.dlq}


def sample_value(i: int, run: str = "chaos") -> tuple[bytes, bytes]:
    s = Sample(run_id=run, host=f"h{i % 24}", cpu_pct=float(i % 101), mem_pct=float((i * 7) % 101),
               disk_pct=float((i * 13) % 101), tags={"i": str(i)})
    return s.key.encode(), s.model_dump_json().encode()


def produce(conf: dict[str, Any], topic: str, items: Iterator[tuple[bytes | None, bytes]] | list,
            rate_per_s: float | None = None, stop: threading.Event | None = None) -> int:
    """Idempotent, acks=all; with ``rate_per_s`` the stream is paced so faults land mid-stream."""
    p = Producer({**conf, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                  "delivery.timeout.ms": 300_000, "message.max.bytes": 2_000_000})
    n, t0 = 0, time.monotonic()
    for key, value in items:
        if stop is not None and stop.is_set():
            break
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if rate_per_s and n % 50 == 0:
            delay = t0 + n / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        p.poll(0)
    left = p.flush(300)
    if left:
        raise RuntimeError(f"{left} input messages not delivered")
    return n


def consume_process(bootstrap: str, topics: Topics, bundle: Path, *extra: str,
                    env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "perfwatch.app.cli", "consume", "--bootstrap-servers", bootstrap, *topics.flags(),
            "--bundle", str(bundle), "--verbose", *extra]
    # A file, not a pipe: nobody reads a pipe here, and librdkafka's connection errors during an outage
    # would fill it and block the consumer on a write.
    log = tempfile.NamedTemporaryFile("w", prefix="perfwatch-consume-", suffix=".log", delete=False)  # noqa: SIM115
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def count(conf: dict[str, Any], topics: Topics, committed: bool = True) -> tuple[int, int, int, int]:
    """(inputs, lost, duplicated, dlq) by source offset."""
    inputs = {(m.partition(), m.offset()) for m in read_topic(conf, topics.samples, idle_s=2)}
    per: Counter[tuple[int, int]] = Counter()
    for m in read_topic(conf, topics.predictions, idle_s=2, read_committed=committed):
        src = json.loads(m.value() or b"{}")["source"]
        per[(src["partition"], src["offset"])] += 1
    dlq = set()
    for m in read_topic(conf, topics.dlq, idle_s=2, read_committed=committed):
        h = headers_of(m)
        dlq.add((int(h["perfwatch.source.partition"]), int(h["perfwatch.source.offset"])))
    handled = set(per) | dlq
    lost = len(inputs - handled)
    duplicated = sum(per.values()) - len(per)
    return len(inputs), lost, duplicated, len(dlq)


def wait_until(pred: Callable[[], bool], timeout: float, every: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return False


def outputs(conf: dict[str, Any], topics: Topics) -> int:
    """Records on the output topics so far; -1 while the brokers cannot say (e.g. a leader is moving)."""
    try:
        return sum(end_offsets(conf, topics.predictions).values()) + sum(end_offsets(conf, topics.dlq).values())
    except KafkaException:
        return -1


def at_least(conf: dict[str, Any], topics: Topics, target: int) -> Callable[[], bool]:
    return lambda: outputs(conf, topics) >= target


@contextmanager
def local_broker(nodes: int = 1, sasl_users: list[SaslUser] | None = None) -> Iterator[LocalKafka]:
    d = Path(tempfile.mkdtemp(prefix=f"perfwatch-chaos-{nodes}n-"))
    kafka = LocalKafka(d, nodes=nodes, sasl_users=sasl_users, heap_mb=384 if nodes == 3 else 512)
    kafka.start(timeout=180)
    try:
        yield kafka
    finally:
        kafka.stop()


# -- scenarios -------------------------------------------------------------------------------------
