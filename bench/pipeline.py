"""Pipeline measurements through a real broker: throughput, latency at fixed offered loads, peak RSS of
a consumer process, and scale-out. Times come from the broker (LogAppendTime on the predictions topic),
so every figure includes Kafka, JSON, tokenizing, ONNX and the commits."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from perfwatch.bench.harness import Topics, produce
from perfwatch.bundle import Precision
from perfwatch.consumer.processor import StreamProcessor
from perfwatch.kafkaio import end_offsets, read_topic
from perfwatch.settings import ConsumerSettings, Guarantee, inference_plan, usable_cores
from perfwatch.synthetic import generate_runs


def payloads(n: int, seed: int = 5) -> list[tuple[bytes, bytes]]:
    out = []
    for s in generate_runs(n // 300 + 1, seed, "bench", hosts=5, samples_per_host=60):
        out.append((s.key.encode(), s.model_dump_json(exclude_none=True).encode()))
        if len(out) == n:
            break
    return out


def warm_up(conf: dict[str, Any], bundle: Path, seconds: float, rate: float, *, precision: Precision,
            batch: int) -> dict[str, Any]:
    """Run the pipeline at a steady load before measuring, half at-least-once, half exactly-once. A fresh
    broker's JIT compilers take about a third of 2 cores for its first minute of traffic (measured); a
    broker in service is long past that, so measuring a cold one would charge its warm-up to perfwatch."""
    t0 = time.monotonic()
    for guarantee in ("at-least-once", "exactly-once"):
        topics = Topics.fresh(conf, 3)
        s = ConsumerSettings(bootstrap_servers=conf["bootstrap.servers"], bundle=bundle, precision=precision,
                             guarantee=guarantee, batch_size=batch, max_wait_ms=50,
                             group_id=f"bench-warm-{uuid.uuid4().hex[:6]}", **topics.settings())
        proc = StreamProcessor(s)
        t = threading.Thread(target=proc.run, kwargs={"max_idle_s": 1.0}, daemon=True)
        t.start()
        proc.ready.wait(30)
        produce(conf, topics.samples, payloads(max(1, int(rate * seconds / 2)), seed=3), rate_per_s=rate)
        t.join(600)
    return {"seconds": round(time.monotonic() - t0, 1), "offered_per_s": rate}


def _append_times(conf: dict[str, Any], topic: str) -> list[tuple[float, dict]]:
    import json

    return [(m.timestamp()[1] / 1000, json.loads(m.value() or b"{}")) for m in read_topic(conf, topic, idle_s=1.5)]


def throughput(conf: dict[str, Any], bundle: Path, n: int, *, guarantee: Guarantee, precision: Precision, batch: int,
               partitions: int = 3) -> dict[str, Any]:
    """Samples/s of one in-process consumer over ``n`` pre-produced samples (first to last verdict)."""
    topics = Topics.fresh(conf, partitions, prefix="bench", broker_time=True)
    produce(conf, topics.samples, payloads(n))
    s = ConsumerSettings(bootstrap_servers=conf["bootstrap.servers"], bundle=bundle, precision=precision,
                         guarantee=guarantee, batch_size=batch, max_wait_ms=50,
                         group_id=f"bench-{uuid.uuid4().hex[:6]}", **topics.settings())
    proc = StreamProcessor(s)
    workers, threads = s.inference_plan()
    t = threading.Thread(target=proc.run, kwargs={"max_idle_s": 2.0}, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(1800)
    wall = time.monotonic() - t0
    times = sorted(ts for ts, _ in _append_times(conf, topics.predictions))
    span = times[-1] - times[0] if len(times) > 1 else wall
    return {"guarantee": guarantee, "precision": precision, "batch": batch, "samples": n, "verdicts": len(times),
            "samples_per_s": (len(times) - 1) / span if span > 0 else 0.0, "commits": proc.stats.commits,
            "workers": workers, "threads": threads,
            # share of the workers' time spent in ORT: 1.0 = inference never waited for Kafka or Python
            "inference_share": proc.stats.inference_s / (span * workers) if span > 0 else 0.0}


def latency(conf: dict[str, Any], bundle: Path, rate: float, seconds: float, *, precision: Precision, batch: int,
            max_wait_ms: int) -> dict[str, Any]:
    """End-to-end latency (input CreateTime → verdict LogAppendTime) at a fixed offered load."""
    topics = Topics.fresh(conf, 3)
    s = ConsumerSettings(bootstrap_servers=conf["bootstrap.servers"], bundle=bundle, precision=precision,
                         batch_size=batch, max_wait_ms=max_wait_ms,
                         group_id=f"bench-{uuid.uuid4().hex[:6]}", **topics.settings())
    proc = StreamProcessor(s)
    t = threading.Thread(target=proc.run, kwargs={"max_idle_s": 3.0}, daemon=True)
    t.start()
    proc.ready.wait(30)
    n = max(50, int(rate * seconds))
    items = payloads(n, seed=11)
    produce(conf, topics.samples, items, rate_per_s=rate)
    t.join(600)
    inputs = {(m.partition(), m.offset()): m.timestamp()[1] / 1000
              for m in read_topic(conf, topics.samples, idle_s=1.5)}
    lat = []
    for ts, v in _append_times(conf, topics.predictions):
        src = (v["source"]["partition"], v["source"]["offset"])
        if src in inputs:
            lat.append(ts - inputs[src])
    arr = np.array(lat[len(lat) // 10:])  # drop the first 10 %: warm-up
    return {"offered_per_s": rate, "samples": len(lat), "p50_ms": float(np.percentile(arr, 50) * 1000),
            "p95_ms": float(np.percentile(arr, 95) * 1000), "p99_ms": float(np.percentile(arr, 99) * 1000)}


def _vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def consumer_processes(conf: dict[str, Any], bundle: Path, n: int, processes: int, *, precision: Precision,
                       batch: int, partitions: int = 6) -> dict[str, Any]:
    """``processes`` real `perfwatch consume` processes in one group: samples/s and each one's peak RSS."""
    topics = Topics.fresh(conf, partitions, prefix="bench", broker_time=True)
    produce(conf, topics.samples, payloads(n, seed=17))
    group = f"bench-{uuid.uuid4().hex[:6]}"
    # The cores are split between the processes; each one plans its share as the consumer would.
    workers, threads = inference_plan(cores=max(1, usable_cores() // processes))
    procs = [subprocess.Popen([sys.executable, "-m", "perfwatch.app.cli", "consume", "--bootstrap-servers",
                               conf["bootstrap.servers"], *topics.flags(), "--bundle", str(bundle), "--group-id", group,
                               "--precision", precision, "--batch-size", str(batch), "--threads", str(threads),
                               "--inference-workers", str(workers),
                               "--no-create-topics"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(processes)]
    deadline = time.monotonic() + 1800
    while sum(end_offsets(conf, topics.predictions).values()) < n and time.monotonic() < deadline:
        time.sleep(0.5)
    peaks = [_vm_hwm_kib(p.pid) / 1024 for p in procs]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)
    times = sorted(ts for ts, _ in _append_times(conf, topics.predictions))
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"processes": processes, "workers_each": workers, "threads_each": threads, "samples": n,
            "verdicts": len(times),
            "samples_per_s": (len(times) - 1) / span if span > 0 else 0.0, "peak_rss_mib": peaks}


