"""Helpers for tests that drive the real pipeline: produce inputs, run processors, read outputs back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from perfwatch.bench import harness
from perfwatch.kafkaio import end_offsets, read_topic
from perfwatch.sample import Sample

# One harness for tests, bench and chaos: the same topics and the same producer.
Topics = harness.Topics
produce = harness.produce


def make_topics(topic_factory: Any, partitions: int = 3) -> Topics:
    return Topics.from_factory(topic_factory, partitions)


def sample_msg(i: int, cpu: float, mem: float = 20.0, disk: float = 20.0, run: str = "r1",
               host: str | None = None) -> tuple[bytes, bytes]:
    s = Sample(run_id=run, host=host or f"h{i % 7}", cpu_pct=cpu, mem_pct=mem, disk_pct=disk, tags={"i": str(i)})
    return s.key.encode(), s.model_dump_json().encode()


def read_json(conf: dict[str, Any], topic: str, *, committed: bool = False, idle_s: float = 3.0) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(conf, topic, idle_s=idle_s, read_committed=committed)]


def read_json_to_end(conf: dict[str, Any], topic: str, *, committed: bool = True,
                     timeout: float = 120.0) -> list[dict]:
    """Every record up to the end offsets taken at the start (under read_committed: the last stable offset),
    judged by position, not by a quiet moment (a loaded machine can pause a fetch for seconds)."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer({**conf, "group.id": f"reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                  "enable.partition.eof": True,
                  "isolation.level": "read_committed" if committed else "read_uncommitted"})
    out: list[dict] = []
    try:
        parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        todo = {p for p, end in ends.items() if end > 0}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(500, timeout=0.5):
                p, off, err = m.partition(), m.offset(), m.error()
                if err is None:
                    out.append(json.loads(m.value()))
                elif err.code() != KafkaError._PARTITION_EOF:
                    continue
                if off is not None and (off + (err is None)) >= ends[p]:
                    todo.discard(p)
        assert not todo, f"{topic}: partitions {todo} not read to their end in {timeout} s"
    finally:
        c.close()
    return out


def total(conf: dict[str, Any], topic: str) -> int:
    return sum(end_offsets(conf, topic).values())


def run_in_thread(proc: Any, max_idle_s: float | None = None) -> threading.Thread:
    t = threading.Thread(target=proc.run, kwargs={"max_idle_s": max_idle_s}, daemon=True)
    t.start()
    return t


def wait_for(pred: Any, timeout: float = 60.0, every: float = 0.2) -> bool:
    return harness.wait_until(pred, timeout, every)


def consume_cli(bootstrap: str, topics: Topics, bundle: Path, *extra: str) -> subprocess.Popen[str]:
    """`perfwatch consume` as a real process (for SIGKILL / SIGTERM tests)."""
    args = [sys.executable, "-m", "perfwatch.app.cli", "consume", "--bootstrap-servers", bootstrap, *topics.flags(),
            "--bundle", str(bundle), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
