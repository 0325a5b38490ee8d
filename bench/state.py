"""Hysteresis state at scale, against a real broker (``python -m perfwatch.bench.state --bootstrap HOST:PORT``).

restore: a changelog of N records (default 100,000; K distinct keys) is restored the way the consumer
does it on assignment (consumer.changelog.restore); prints records, keys and seconds.

expiry: K keys (default 1,000,000) are each seen once through the real Hysteresis and StateStore, in
batches of 1,000 whose changelog records go to the broker, then left idle: they are expired in sweeps of
10,000 (tombstones), as the consumer loop does. Prints Python's allocated blocks and the RSS at the
baseline, with every key held, and after expiry; then waits for the log cleaner and restores the
changelog again: what is left is what a new owner would read. The model is not run (a sample's class
is given), so this measures the state, not inference.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from perfwatch.consumer import changelog
from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.state import KeyState, PartitionState, StateStore, encode
from perfwatch.kafkaio import ensure_topics

# Roll small segments and drop tombstones soon, so the cleaner's result shows within minutes.
FAST_COMPACTION = {**changelog.TOPIC_CONFIG, "segment.bytes": str(1_048_576), "segment.ms": "5000",
                   "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "1000"}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _producer(conf: dict[str, Any]) -> Producer:
    return Producer({**conf, "enable.idempotence": True, "linger.ms": 20, "compression.type": "lz4",
                     "queue.buffering.max.messages": 500_000})


def _send(p: Producer, topic: str, records: list[Any]) -> None:
    for r in records:
        while True:
            try:
                p.produce(r.topic, r.value, r.key, partition=r.partition)
                break
            except BufferError:
                p.poll(0.1)
    p.poll(0)


def bench_restore(conf: dict[str, Any], records: int, keys: int, partitions: int) -> dict[str, Any]:
    topic = f"bench-state-{uuid.uuid4().hex[:8]}"
    ensure_topics(conf, [topic], partitions=partitions, config=changelog.TOPIC_CONFIG)
    p = _producer(conf)
    for i in range(records):
        st = KeyState(0b10110, 5, i % 7 == 0, time.time(), i, '{"state":"firing"}' if i % 7 == 0 else None)
        while True:
            try:
                p.produce(topic, encode(st), f"run-1/host-{i % keys}".encode(), partition=i % keys % partitions)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(120) == 0
    parts = {i: PartitionState() for i in range(partitions)}
    t0, c0 = time.perf_counter(), time.process_time()
    res = changelog.restore(conf, topic, parts)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(r.records for r in res)
    return {"topic": topic, "records": n, "keys": sum(r.keys for r in res), "partitions": partitions,
            "seconds": round(dt, 2), "cpu_seconds": round(cpu, 2), "records_per_s": round(n / dt)}


def bench_expiry(conf: dict[str, Any], keys: int, partitions: int, wait_s: float) -> dict[str, Any]:
    topic = f"bench-state-{uuid.uuid4().hex[:8]}"
    ensure_topics(conf, [topic], partitions=partitions, config=FAST_COMPACTION)
    hyst, store = Hysteresis(3, 5), StateStore()
    for i in range(partitions):
        store.assign(i)
    p = _producer(conf)
    gc.collect()
    # sys.getallocatedblocks: Python's live memory blocks (no tracing overhead); RSS: what the OS sees.
    base_blocks, base_rss = sys.getallocatedblocks(), _rss_mb()
    t0 = time.perf_counter()
    for start in range(0, keys, 1000):
        changes = store.begin()
        for i in range(start, min(start + 1000, keys)):
            hyst.observe(changes, i % partitions, i // partitions, f"run-1/host-{i}", i % 3 == 0, 1000.0,
                         lambda s: json.dumps({"state": s}))
        _send(p, topic, changelog.records(changes, topic))
        changes.apply()
    seen_s = time.perf_counter() - t0
    gc.collect()
    full_blocks, full_rss, held = sys.getallocatedblocks(), _rss_mb(), len(store)
    _log(f"{held} keys held after {seen_s:.0f} s: {full_blocks - base_blocks} blocks, RSS {full_rss:.0f} MB")
    t0 = time.perf_counter()
    sweeps = 0
    while changes := store.expire(before=2000.0, limit=10_000):
        _send(p, topic, changelog.records(changes, topic))
        changes.apply()
        sweeps += 1
    assert p.flush(120) == 0
    expiry_s = time.perf_counter() - t0
    gc.collect()
    after_blocks, after_rss = sys.getallocatedblocks(), _rss_mb()
    _log(f"expired in {expiry_s:.0f} s: {after_blocks - base_blocks} blocks over baseline, RSS {after_rss:.0f} MB")
    produced = keys * 2  # one state record per key, then its tombstone
    # The active segment is never cleaned: a marker record per partition after segment.ms rolls the
    # segment holding the last tombstones (the consumer's own later writes do the same in production).
    deadline = time.monotonic() + wait_s
    left = produced
    while time.monotonic() < deadline:
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
        marker = _producer(conf)
        for i in range(partitions):
            marker.produce(topic, None, b"bench/marker", partition=i)
        marker.flush(10)
        parts = {i: PartitionState() for i in range(partitions)}
        left = sum(r.records for r in changelog.restore(conf, topic, parts))
        _log(f"changelog: {left} records left of {produced}")
        if left <= produced // 100:
            break
    return {
        "topic": topic, "keys": keys, "held": held, "observe_s": round(seen_s, 1), "expiry_s": round(expiry_s, 1),
        "sweeps": sweeps, "python_blocks_over_baseline": {"all_keys": full_blocks - base_blocks,
                                                          "after_expiry": after_blocks - base_blocks},
        "rss_mb": {"baseline": round(base_rss), "all_keys": round(full_rss), "after_expiry": round(after_rss)},
        "changelog_records_produced": produced, "changelog_records_left_after_compaction": left,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["restore", "expiry"])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--keys", type=int, default=None, help="restore: 20,000; expiry: 1,000,000")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--wait", type=float, default=300, help="expiry: longest wait for the log cleaner, seconds")
    a = p.parse_args()
    conf = {"bootstrap.servers": a.bootstrap}
    if a.what == "restore":
        out = bench_restore(conf, a.records, a.keys or 20_000, a.partitions)
    else:
        out = bench_expiry(conf, a.keys or 1_000_000, a.partitions, a.wait)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
