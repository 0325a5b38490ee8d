"""The one harness of the benchmarks, the chaos scenarios and the reliability tests: fresh topics, paced
idempotent produce, consumer processes, exact counting by source offset, and local brokers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

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


TOPIC_SETTINGS = ("samples_topic", "predictions_topic", "alerts_topic", "dlq_topic")


@dataclass
class Topics:
    """The four topics of one pipeline, fresh for each scenario, bench round or test."""

    samples: str
    predictions: str
    alerts: str
    dlq: str

    @classmethod
    def fresh(cls, conf: dict[str, Any], partitions: int = 3, replication: int = 1, prefix: str = "chaos",
              broker_time: bool = False) -> Topics:
        """Create them; ``broker_time`` stamps the outputs with LogAppendTime, so that "verdict on the topic"
        is when the broker appended it (the bench's latency)."""
        tag = uuid.uuid4().hex[:8]
        t = cls(*(f"{prefix}-{tag}.{n}" for n in ("samples", "predictions", "alerts", "dlq")))
        ensure_topics(conf, [t.samples], partitions, replication)
        ensure_topics(conf, [t.predictions, t.alerts, t.dlq], partitions, replication,
                      config={"message.timestamp.type": "LogAppendTime"} if broker_time else None)
        return t

    @classmethod
    def from_factory(cls, topic_factory: Callable[..., str], partitions: int = 3) -> Topics:
        """From the tests' per-test topic factory."""
        return cls(*(topic_factory(n, partitions=partitions) for n in ("samples", "pred", "alerts", "dlq")))

    def settings(self) -> dict[str, Any]:
        return dict(zip(TOPIC_SETTINGS, (self.samples, self.predictions, self.alerts, self.dlq), strict=True))

    def flags(self) -> list[str]:
        return [x for k, v in self.settings().items() for x in ("--" + k.replace("_", "-"), v)]


def sample_value(i: int, run: str = "chaos") -> tuple[bytes, bytes]:
    s = Sample(run_id=run, host=f"h{i % 24}", cpu_pct=float(i % 101), mem_pct=float((i * 7) % 101),
               disk_pct=float((i * 13) % 101), tags={"i": str(i)})
    return s.key.encode(), s.model_dump_json().encode()


def produce(conf: dict[str, Any], topic: str, items: Iterable[tuple[bytes | str | None, bytes | str]],
            rate_per_s: float | None = None, stop: threading.Event | None = None) -> int:
    """Idempotent, acks=all, every message delivered or an error. With ``rate_per_s`` the stream is paced
    (faults land mid-stream; the bench's load levels), and the clock starts once the first message is
    acknowledged: connecting and getting a producer id take a while, and that backlog would otherwise be
    charged to the consumer as latency."""
    p = Producer({**conf, "enable.idempotence": True, "acks": "all", "linger.ms": 2 if rate_per_s else 20,
                  "delivery.timeout.ms": 300_000, "message.max.bytes": 2_000_000})
    n, t0 = 0, time.monotonic()
    for key, value in items:
        if stop is not None and stop.is_set():
            break
        if rate_per_s:
            delay = t0 + n / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        p.poll(0)
        if n == 1 and rate_per_s:
            p.flush(30)
            t0 = time.monotonic() - 1 / rate_per_s
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


class Supervised:
    """A consumer process kept running the way Kubernetes (``restartPolicy: Always``) or systemd
    (``Restart=on-failure``) keeps it: when it exits on its own, for instance because its watchdog found a
    Kafka call stuck past its deadline, a fresh one starts under the same flags (and so the same
    transactional id, which fences the old producer). ``stop`` sends SIGTERM and waits."""

    def __init__(self, start: Callable[[], subprocess.Popen[str]], restart_delay_s: float = 1.0) -> None:
        self._start, self._delay = start, restart_delay_s
        self.exits: list[int] = []  # exit codes of the processes that ended on their own
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.proc = start()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def restarts(self) -> int:
        return len(self.exits)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self.proc.poll()
            if code is None:
                self._stopping.wait(0.2)
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                self.exits.append(code)
                time.sleep(self._delay)
                self.proc = self._start()

    def stop(self, timeout: float = 60.0) -> None:
        with self._lock:
            self._stopping.set()
        self._thread.join(timeout)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:  # stuck (in librdkafka, say): what a supervisor's kill does
                self.proc.kill()
                self.proc.wait(timeout)


def committed(conf: dict[str, Any], group: str, topic: str) -> int:
    """Sum of the group's committed offsets on ``topic``: the inputs it has answered for good (an output's
    end offset also counts transaction markers and aborted records, so it runs ahead under exactly-once)."""
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, p) for p in end_offsets(conf, topic)]
        return sum(max(0, tp.offset) for tp in c.committed(parts, timeout=10))
    except KafkaException:
        return -1
    finally:
        c.close()


def group_coordinator(conf: dict[str, Any], group: str, timeout: float = 30.0) -> int:
    """The node id of the broker that coordinates ``group`` (the admin API's DescribeGroups)."""
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    while True:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
            if desc.coordinator is not None and desc.members:
                return int(desc.coordinator.id)
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no coordinator for group {group} in {timeout:.0f}s")
        time.sleep(0.5)


def count(conf: dict[str, Any], topics: Topics, committed: bool = True) -> tuple[int, int, int, int]:
    """(inputs, lost, duplicated, dlq) by source offset. Duplicated counts a second verdict, a second dead
    letter or a second alert (same input and state) of one input, and an input with both a verdict and a
    dead letter: under exactly-once every one of them must be 0."""
    inputs = {(m.partition(), m.offset()) for m in read_topic(conf, topics.samples, idle_s=2)}
    per: Counter[tuple[int, int]] = Counter()
    for m in read_topic(conf, topics.predictions, idle_s=2, read_committed=committed):
        src = json.loads(m.value() or b"{}")["source"]
        per[(src["partition"], src["offset"])] += 1
    dlq: Counter[tuple[int, int]] = Counter()
    for m in read_topic(conf, topics.dlq, idle_s=2, read_committed=committed):
        h = headers_of(m)
        dlq[(int(h["perfwatch.source.partition"]), int(h["perfwatch.source.offset"]))] += 1
    alerts: Counter[tuple[int, int, str | None]] = Counter()
    for m in read_topic(conf, topics.alerts, idle_s=2, read_committed=committed):
        a = json.loads(m.value() or b"{}")
        alerts[(a["source"]["partition"], a["source"]["offset"], a.get("state"))] += 1
    lost = len(inputs - (set(per) | set(dlq)))
    duplicated = sum(sum(c.values()) - len(c) for c in (per, dlq, alerts)) + len(set(per) & set(dlq))
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
