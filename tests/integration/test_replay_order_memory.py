"""Replay against the real broker: samples go out in time order (#21.6), and a 2 GB recording replays
in bounded memory (#21.9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from perfwatch.decoding import decode_sample
from perfwatch.kafkaio import read_topic
from tests.kafka_fixtures import Broker

pytestmark = pytest.mark.integration

# The replay process's peak RSS must stay under this whatever the recording's size: the interpreter
# and libraries (~120 MB), one sorting chunk (CHUNK_BYTES, 64 MB estimated), librdkafka's queue (64 MB)
# and the merge's file buffers. The old code held the whole file several times over (~13 × its size).
RSS_BOUND_MB = 600

# The peak is VmHWM of this process's own address space. Not getrusage's ru_maxrss: Linux carries the
# forking parent's high-water mark across exec, so under a pytest process that has loaded torch the child
# "peaked" at the parent's 1.36 GB (seen in a full-suite run; 109 MB when the test ran alone).
_RSS_WRAPPER = """
import sys
from perfwatch.app.cli import main
rc = main(sys.argv[1:])
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(f"peak_rss_kb={hwm}", file=sys.stderr)
sys.exit(rc)
"""


def _replay(kafka: Broker, topic: str, path: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], int]:
    res = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, "replay", str(path), "--speed", "max",
                          "--bootstrap-servers", kafka.bootstrap, "--samples-topic", topic, "--no-progress"],
                         capture_output=True, text=True, timeout=timeout, check=False,
                         env={**os.environ, "COLUMNS": "200"})
    rss = [int(line.split("=")[1]) for line in res.stderr.splitlines() if line.startswith("peak_rss_kb=")]
    return res, (rss[0] if rss else -1)


def _count(kafka: Broker, topic: str) -> int:
    c = Consumer({**kafka.conf, "group.id": "count"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()


def _line(i: int, host: str, second: int, pad: str) -> str:
    ts = f"2026-01-{second // 86400 + 1:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
    return json.dumps({"run_id": "big", "host": host, "ts": ts, "cpu_pct": i % 100, "mem_pct": 50,
                       "disk_pct": 20, "tags": {"seq": str(i), "pad": pad}}, separators=(",", ":"))


def test_a_recording_ordered_by_host_goes_out_in_time_order(kafka: Broker, topic_factory, tmp_path: Path) -> None:
    """One partition, so the topic's order is the send order: h1's whole run then h2's must interleave."""
    topic = topic_factory("order", partitions=1)
    rec = tmp_path / "by-host.jsonl"
    rec.write_text("".join(_line(i, h, 2 * i + (h == "h2"), "") + "\n" for h in ("h1", "h2") for i in range(50)))
    res, _ = _replay(kafka, topic, rec, 120)
    assert res.returncode == 0, res.stderr
    got = [decode_sample(m.value()) for m in read_topic(kafka.conf, topic, idle_s=2)]
    assert len(got) == 100
    assert [s.ts for s in got] == sorted(s.ts for s in got)  # type: ignore[type-var]
    assert [s.tags["seq"] for s in got if s.host == "h1"] == [str(i) for i in range(50)]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_a_2gb_recording_replays_in_bounded_memory(kafka: Broker, topic_factory, tmp_path: Path) -> None:
    """2 GiB of JSONL with 4 KB lines, ordered by host, so the replay must sort it (spill and merge)."""
    topic = topic_factory("big", partitions=3)
    rec = tmp_path / "big.jsonl"
    pad = "x" * 3900
    target, hosts = 2 << 30, ("h1", "h2", "h3", "h4")
    per_host = target // len(hosts) // (len(_line(0, "h1", 0, pad)) + 1) + 1
    with rec.open("w") as f:
        for k, host in enumerate(hosts):
            for i in range(per_host):  # _line's JSON, formatted directly: json.dumps of 2 GB takes minutes
                t = i * 4 + k
                f.write(f'{{"run_id":"big","host":"{host}","ts":"2026-01-{t // 86400 + 1:02d}T'
                        f'{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}Z","cpu_pct":{i % 100},'
                        f'"mem_pct":50,"disk_pct":20,"tags":{{"seq":"{i}",'
                        f'"pad":"{pad}"}}}}\n')
    size = rec.stat().st_size
    assert size >= target
    res, rss_kb = _replay(kafka, topic, rec, 3000)
    assert res.returncode == 0, res.stderr[-2000:]
    sent = per_host * len(hosts)
    assert f"sent {sent} (delivered {sent}, failed 0)" in res.stderr
    assert _count(kafka, topic) == sent  # nothing lost; the idempotent producer duplicates nothing
    print(json.dumps({"recording_bytes": size, "samples": sent, "peak_rss_mb": round(rss_kb / 1024)}))
    assert 0 < rss_kb / 1024 < RSS_BOUND_MB
