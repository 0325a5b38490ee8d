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
from perfwatch.consumer.batch import coords
from perfwatch.consumer.delivery import produce_all
from perfwatch.consumer.processor import StreamProcessor
from perfwatch.consumer.response_cache import keys_of, texts_of
from perfwatch.consumer.routing import Record
from perfwatch.kafkaio import end_offsets, read_topic
from perfwatch.sample import Sample
from perfwatch.settings import ConsumerSettings, Guarantee, inference_plan, usable_cores
from perfwatch.synthetic import generate_runs
from perfwatch.template import INPUTS, SIDE


def payloads(n: int, seed: int = 5) -> list[tuple[bytes, bytes]]:
    out = []
    for s in generate_runs(n // 300 + 1, seed, "bench", hosts=5, samples_per_host=60):
        out.append((s.key.encode(), s.model_dump_json(exclude_none=True).encode()))
        if len(out) == n:
            break
    return out


# A repeat takes a triple sent at least this many samples earlier. A repeat of an input whose first
# occurrence is still in a batch in inference is a second miss (the answer is not stored yet): drawn from
# every earlier sample, the tiny bench's 50 % row measured 44 % on a loaded machine.
REPEAT_LAG = 2048


def payloads_at_hit_rate(n: int, hit_rate: float, seed: int = 29) -> list[tuple[bytes, bytes]]:
    """Synthetic runs' samples whose model inputs repeat at ``hit_rate``: a sample is a miss when it gets a
    whole-percent triple never sent before, a hit when it takes the triple of a sample sent at least
    ``REPEAT_LAG`` earlier (the first ones are all new, so later ones repeat more often, up to always).
    Keys, hosts, times and load fields stay the runs' own; the fractions below the whole percent vary (the
    cache floors them)."""
    rng = np.random.default_rng(seed)
    fresh = rng.permutation(INPUTS)
    p = min(1.0, hit_rate * n / max(1, n - REPEAT_LAG))
    new = 0  # distinct triples sent so far
    sent: list[int] = []
    out = []
    for s in generate_runs(n // 300 + 1, seed, "bench", hosts=5, samples_per_host=60):
        if len(sent) >= REPEAT_LAG and rng.random() < p:
            k = sent[int(rng.integers(len(sent) - REPEAT_LAG + 1))]
        else:
            k, new = int(fresh[new]), new + 1
        sent.append(k)
        whole = (k // (SIDE * SIDE), k // SIDE % SIDE, k % SIDE)
        cpu, mem, disk = (float(v) if v == 100 else v + float(rng.random()) * 0.99 for v in whole)
        s = s.model_copy(update={"cpu_pct": cpu, "mem_pct": mem, "disk_pct": disk})
        out.append((s.key.encode(), s.model_dump_json(exclude_none=True).encode()))
        if len(out) == n:
            break
    return out


def _prefill(proc: StreamProcessor, items: list[tuple[bytes, bytes]]) -> int:
    """Put the model's answer for every input of ``items`` into the processor's cache (the loop's ceiling:
    every sample a hit). Returns how many distinct inputs that took."""
    assert proc.cache is not None  # noqa: S101
    keys = np.unique(keys_of([Sample.model_validate_json(v) for _, v in items]))
    for i in range(0, len(keys), 256):
        chunk = keys[i: i + 256]
        proc.cache.put(chunk, proc.model.predict(texts_of(chunk, proc.model.template_version)))
    return len(keys)


def _profiled(proc: StreamProcessor, max_idle_s: float, top: int = 12) -> list[dict[str, Any]]:
    """Run the loop under cProfile (its own thread only: inference workers are not in it); the top entries
    by own time."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(proc.run, max_idle_s=max_idle_s)
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    return [{"function": f"{Path(f).name}:{line}({name})", "calls": v[1], "own_s": round(v[2], 3),
             "share": round(v[2] / total, 3) if total else 0.0} for (f, line, name), v in rows]


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
               partitions: int = 3, items: list[tuple[bytes, bytes]] | None = None, cache: bool = True,
               prefill: bool = False, profile: bool = False, checkpoint_ms: int | None = None) -> dict[str, Any]:
    """Samples/s of one in-process consumer over ``n`` pre-produced samples (first to last verdict): the
    synthetic runs, or ``items``; ``prefill`` puts every answer in the cache first (the loop's ceiling)."""
    topics = Topics.fresh(conf, partitions, prefix="bench", broker_time=True)
    items = items if items is not None else payloads(n)
    produce(conf, topics.samples, items)
    s = ConsumerSettings(bootstrap_servers=conf["bootstrap.servers"], bundle=bundle, precision=precision,
                         guarantee=guarantee, batch_size=batch, max_wait_ms=50, response_cache=cache,
                         group_id=f"bench-{uuid.uuid4().hex[:6]}", **topics.settings())
    if checkpoint_ms is not None:
        s = s.model_copy(update={"checkpoint_ms": checkpoint_ms})
    proc = StreamProcessor(s)
    prefilled = _prefill(proc, items) if prefill else 0
    workers, threads = s.inference_plan()
    top: list[dict[str, Any]] = []

    def body() -> None:
        if profile:
            top.extend(_profiled(proc, 2.0))
        else:
            proc.run(max_idle_s=2.0)

    t = threading.Thread(target=body, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(1800)
    wall = time.monotonic() - t0
    times = sorted(ts for ts, _ in _append_times(conf, topics.predictions))
    span = times[-1] - times[0] if len(times) > 1 else wall
    return {"guarantee": guarantee, "precision": precision, "batch": batch, "samples": n, "verdicts": len(times),
            "samples_per_s": (len(times) - 1) / span if span > 0 else 0.0, "commits": proc.stats.commits,
            "workers": workers, "threads": threads, "cache": cache, "prefilled": prefilled,
            "hit_rate": proc.stats.cache_hits / proc.stats.cache_lookups if proc.stats.cache_lookups else 0.0,
            "checkpoint_ms": s.checkpoint_ms, "profile": top,
            # share of the workers' time spent in ORT: 1.0 = inference never waited for Kafka or Python
            "inference_share": proc.stats.inference_s / (span * workers) if span > 0 else 0.0}


def kafka_only(conf: dict[str, Any], n: int, *, items: list[tuple[bytes, bytes]], batch: int,
               partitions: int = 3, checkpoint_ms: int = 100, record_bytes: int = 560) -> dict[str, Any]:
    """What the client and broker alone allow on this machine: the consumer's own Kafka clients
    (``consumer_config`` / ``producer_config``) consume the same samples in batches and produce one
    verdict-sized record per sample, committing every ``checkpoint_ms`` — no decoding, model, routing or
    delivery tracking. An upper bound for the loop's ceiling (it commits without waiting for acks),
    measured the same way (verdicts' append times)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from perfwatch.consumer.clients import consumer_config, producer_config

    topics = Topics.fresh(conf, partitions, prefix="bench", broker_time=True)
    produce(conf, topics.samples, items[:n])
    # Set here, not read from PERFWATCH_* (a user's exactly-once setting would make this producer transactional).
    s = ConsumerSettings(bootstrap_servers=conf["bootstrap.servers"], bundle=Path("."), batch_size=batch,
                         guarantee="at-least-once", auto_offset_reset="earliest",
                         group_id=f"bench-{uuid.uuid4().hex[:6]}", **topics.settings())
    c = Consumer(consumer_config(s, lambda e: None))
    p = Producer(producer_config(s, lambda e: None))
    value = b'{"pad": "' + b"x" * (record_bytes - 11) + b'"}'  # about a verdict's size, valid JSON
    out = [Record(topics.predictions, None, value)]
    c.subscribe([topics.samples])
    seen, commits, last_commit, idle_since = 0, 0, time.monotonic(), time.monotonic()
    position: dict[int, int] = {}
    try:
        while seen < n and time.monotonic() - idle_since < 10:
            msgs = c.consume(batch, 0.05)
            for m in msgs:
                if m.error() is None:
                    out[0].key = m.key()
                    produce_all(p, out)  # serves deliveries when the local queue is full
                    _, part, off = coords(m)
                    position[part] = off + 1
                    seen += 1
            if msgs:
                idle_since = time.monotonic()
            p.poll(0)
            if position and (time.monotonic() - last_commit) * 1000 >= checkpoint_ms:
                c.commit(offsets=[TopicPartition(topics.samples, k, v) for k, v in position.items()],
                         asynchronous=True)
                commits, last_commit = commits + 1, time.monotonic()
        p.flush(30)
        if position:  # the final commit, as a loop's shutdown makes
            c.commit(offsets=[TopicPartition(topics.samples, k, v) for k, v in position.items()], asynchronous=False)
            commits += 1
    finally:
        c.close()
    times = sorted(ts for ts, _ in _append_times(conf, topics.predictions))
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"samples": n, "verdicts": len(times), "commits": commits, "batch": batch,
            "samples_per_s": (len(times) - 1) / span if span > 0 else 0.0}


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


