"""Reliability scenarios with exact counts, against real brokers: what `perfwatch chaos` runs (long form)
and tests/reliability runs (short form). Every scenario ends with lost / duplicated / DLQ counts.

Counting: every input message is identified by (partition, offset) on the samples topic; every verdict
carries its source offset. lost = inputs without a verdict (or DLQ record), duplicated = extra verdicts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from perfwatch.broker import LocalKafka, SaslUser
from perfwatch.kafkaio import end_offsets, ensure_topics, headers_of, read_topic
from perfwatch.sample import Sample


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
    args = [sys.executable, "-m", "perfwatch.cli", "consume", "--bootstrap-servers", bootstrap, *topics.flags(),
            "--bundle", str(bundle), "--verbose", *extra]
    # A file, not a pipe: nobody reads a pipe here, and librdkafka's connection errors during an outage
    # would fill it and block the consumer on a write.
    log = tempfile.NamedTemporaryFile("w", prefix="perfwatch-consume-", suffix=".log", delete=False)  # noqa: SIM115
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


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
def consumer_crashes(bootstrap: str, bundle: Path, guarantee: str, n: int = 20_000, kills: int = 5,
                     seed: int = 1) -> Result:
    conf = {"bootstrap.servers": bootstrap}
    topics = Topics.fresh(conf)
    produce(conf, topics.samples, (sample_value(i) for i in range(n)))
    rng = random.Random(seed)
    group = f"chaos-{uuid.uuid4().hex[:8]}"
    flags = ["--group-id", group, "--guarantee", guarantee, "--batch-size", "64"]
    if guarantee == "exactly-once":
        # One instance at a time, restarted under the same id: it fences its killed predecessor and
        # aborts that one's open transaction at start (what the README recommends for deployments).
        flags += ["--transactional-id", f"{group}-0"]
    for _ in range(kills):
        proc = consume_process(bootstrap, topics, bundle, *flags)
        target = outputs(conf, topics) + rng.randint(n // (kills * 4), n // (kills * 2))
        wait_until(at_least(conf, topics, target), timeout=300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    final = consume_process(bootstrap, topics, bundle, *flags, "--until-idle", "8")
    final.wait(900)
    inputs, lost, dup, dlq = count(conf, topics)
    ok = lost == 0 and (dup == 0 if guarantee == "exactly-once" else True) and inputs == n
    return Result(f"consumer SIGKILLed ×{kills} ({guarantee})", inputs, lost, dup, dlq, ok,
                  "duplicates allowed by at-least-once" if guarantee == "at-least-once" and dup else "")


def broker_restart(bundle: Path, n: int = 6000, rate: float = 600.0) -> Result:
    """A single node stopped and started mid-stream; the consumer recovers on its own."""
    with local_broker(1) as kafka:
        state = kafka.load_state()
        assert state is not None  # noqa: S101
        conf = {"bootstrap.servers": state.bootstrap}
        topics = Topics.fresh(conf)
        proc = consume_process(state.bootstrap, topics, bundle, "--group-id", "chaos-restart",
                               "--guarantee", "at-least-once")
        producer = threading.Thread(target=produce, args=(conf, topics.samples, (sample_value(i) for i in range(n)),
                                                          rate), daemon=True)
        producer.start()
        wait_until(lambda: outputs(conf, topics) > n // 4, timeout=120)
        kafka.stop()
        time.sleep(5)
        kafka.start(timeout=120)
        producer.join(600)
        wait_until(lambda: outputs(conf, topics) >= n, timeout=300)
        time.sleep(3)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        inputs, lost, dup, dlq = count(conf, topics)
        return Result("broker stopped/started mid-stream", inputs, lost, dup, dlq,
                      lost == 0 and inputs == n and alive, "consumer never restarted" if alive else "consumer died")


def cluster_node_loss(bundle: Path, n: int = 6000, rate: float = 500.0) -> Result:
    """3 nodes, RF 3, min ISR 2; one node SIGKILLed mid-stream and restarted later; exactly-once."""
    with local_broker(3) as kafka:
        state = kafka.load_state()
        assert state is not None  # noqa: S101
        conf = {"bootstrap.servers": state.bootstrap}
        topics = Topics.fresh(conf, partitions=3, replication=3)
        proc = consume_process(state.bootstrap, topics, bundle, "--group-id", "chaos-cluster",
                               "--guarantee", "exactly-once")
        producer = threading.Thread(target=produce, args=(conf, topics.samples, (sample_value(i) for i in range(n)),
                                                          rate), daemon=True)
        producer.start()
        wait_until(lambda: outputs(conf, topics) > n // 4, timeout=180)
        kafka.kill_node(2)
        time.sleep(8)
        kafka.start_node(2, timeout=180)
        producer.join(600)
        wait_until(lambda: outputs(conf, topics) >= n, timeout=300)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        inputs, lost, dup, dlq = count(conf, topics)
        return Result("3-node cluster, one broker SIGKILLed (exactly-once)", inputs, lost, dup, dlq,
                      lost == 0 and dup == 0 and inputs == n)


def scale_in_out(bootstrap: str, bundle: Path, n: int = 12_000, rate: float = 800.0) -> Result:
    conf = {"bootstrap.servers": bootstrap}
    topics = Topics.fresh(conf, partitions=6)
    group = f"chaos-scale-{uuid.uuid4().hex[:6]}"
    flags = ["--group-id", group, "--guarantee", "at-least-once", "--batch-size", "32"]
    procs = [consume_process(bootstrap, topics, bundle, *flags) for _ in range(3)]
    producer = threading.Thread(target=produce, args=(conf, topics.samples, (sample_value(i) for i in range(n)),
                                                      rate), daemon=True)
    producer.start()
    steps = [("join", None), ("leave", 0), ("leave", 1), ("join", None)]
    for k, (what, idx) in enumerate(steps):
        wait_until(at_least(conf, topics, n * (k + 1) // (len(steps) + 2)), timeout=300)
        if what == "join":
            procs.append(consume_process(bootstrap, topics, bundle, *flags))
        else:
            victim = procs[idx]  # type: ignore[index]
            victim.send_signal(signal.SIGTERM)
            victim.wait(60)
    producer.join(600)
    wait_until(lambda: outputs(conf, topics) >= n, timeout=300)
    time.sleep(3)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(60)
    inputs, lost, dup, dlq = count(conf, topics)
    return Result("3 consumers on 6 partitions, 2 join and 2 leave", inputs, lost, dup, dlq,
                  lost == 0 and inputs == n, "duplicates allowed by at-least-once" if dup else "")


def run_all(long: bool = True) -> list[Result]:
    """The long form, on freshly started local brokers (what `perfwatch chaos` runs)."""
    from bench.bundle import ensure_bench_bundle
    from perfwatch.console import console

    bundle = ensure_bench_bundle("tiny")
    results = []
    scale = 1 if long else 5
    with local_broker(1) as kafka:
        st = kafka.load_state()
        assert st is not None  # noqa: S101
        for guarantee in ("exactly-once", "at-least-once"):
            console.print(f"scenario: consumer crashes ({guarantee}) …")
            results.append(consumer_crashes(st.bootstrap, bundle, guarantee, 20_000 // scale, 5 if long else 3))
        console.print("scenario: scale in/out …")
        results.append(scale_in_out(st.bootstrap, bundle, 12_000 // scale))
        from bench.fuzz import bad_input_at_volume

        console.print("scenario: bad input at volume …")
        results.append(bad_input_at_volume(st.bootstrap, bundle, 10_000 // scale))
    console.print("scenario: broker restart …")
    results.append(broker_restart(bundle, 6000 // scale))
    console.print("scenario: 3-node cluster loses a broker …")
    results.append(cluster_node_loss(bundle, 6000 // scale))
    from bench.security import bad_bundle_refused, sasl_round_trip

    console.print("scenario: bad model …")
    results.append(bad_bundle_refused(bundle))
    console.print("scenario: SASL …")
    results.append(sasl_round_trip(bundle))
    return results


def table(results: list[Result]) -> str:
    rows = ["| scenario | messages | lost | duplicated | DLQ | result |", "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| {r.scenario} | {r.messages} | {r.lost} | {r.duplicated} | {r.dlq} | "
             f"{'pass' if r.ok else 'FAIL'}{' — ' + r.note if r.note else ''} |" for r in results]
    return "\n".join(rows)


def to_json(results: list[Result]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
