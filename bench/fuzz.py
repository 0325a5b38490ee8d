"""Bad input at volume: a seeded fuzzer of malformed samples interleaved with good ones. Every bad one
must reach the DLQ with a reason, every good one must get its verdict, the consumer must stay up and
its memory flat."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from perfwatch.bench.harness import Result, Topics, consume_process, count, outputs, produce, sample_value, wait_until

CATEGORIES = ("invalid_utf8", "deep_json", "huge_number", "nan_inf", "negative", "over_100", "megabyte", "empty",
              "binary", "missing", "wrong_type", "junk_text", "json_array", "truncated")


def malformed(rng: random.Random, category: str) -> bytes:
    good = {"cpu_pct": rng.uniform(0, 100), "mem_pct": rng.uniform(0, 100), "disk_pct": rng.uniform(0, 100),
            "run_id": "fuzz", "host": f"f{rng.randint(0, 9)}"}
    field = rng.choice(["cpu_pct", "mem_pct", "disk_pct"])
    if category == "invalid_utf8":
        return b'{"cpu_pct": 1, "host": "' + bytes([rng.randint(0x80, 0xFF)]) + b'\xc3\x28"}'
    if category == "deep_json":
        depth = rng.randint(200, 5000)
        return b'{"cpu_pct": ' + b"[" * depth + b"]" * depth + b"}"
    if category == "huge_number":
        huge = f'"{field}": 1e{rng.randint(309, 9999)}'
        return json.dumps({**good, field: 0}).replace(f'"{field}": 0', huge).encode()
    if category == "nan_inf":
        return json.dumps({**good, field: rng.choice([float("nan"), float("inf"), float("-inf")])}).encode()
    if category == "negative":
        return json.dumps({**good, field: -rng.uniform(0.001, 1e6)}).encode()
    if category == "over_100":
        return json.dumps({**good, field: 100 + rng.uniform(0.001, 1e6)}).encode()
    if category == "megabyte":
        return json.dumps({**good, "pad": "x" * (1_000_000 + rng.randint(0, 1000))}).encode()
    if category == "empty":
        return b""
    if category == "binary":
        return bytes([rng.randint(0, 8)]) + bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200)))
    if category == "missing":
        return json.dumps({k: v for k, v in good.items() if k != field}).encode()
    if category == "wrong_type":
        return json.dumps({**good, field: rng.choice(["ninety", True, None, [1], {"v": 1}])}).encode()
    if category == "junk_text":
        return "".join(rng.choice("abc xyz:%,->") for _ in range(rng.randint(1, 80))).encode() + b"!"
    if category == "json_array":
        return json.dumps([good]).encode()
    return json.dumps(good).encode()[: rng.randint(1, 20)]  # truncated


def interleaved(n_bad: int, seed: int = 3) -> Iterator[tuple[bytes | None, bytes]]:
    """n_bad malformed + n_bad valid samples, alternating; 1 MB payloads kept to ~1 % of the bad ones."""
    rng = random.Random(seed)
    for i in range(n_bad):
        cat = CATEGORIES[i % len(CATEGORIES)]
        if cat == "megabyte" and rng.random() > 0.15:
            cat = "over_100"
        yield f"fuzz/{cat}".encode(), malformed(rng, cat)
        yield sample_value(i, run="fuzz-good")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bad_input_at_volume(bootstrap: str, bundle: Path, n_bad: int = 10_000) -> Result:
    conf = {"bootstrap.servers": bootstrap}
    topics = Topics.fresh(conf)
    proc = consume_process(bootstrap, topics, bundle, "--group-id", f"fuzz-{time.time_ns()}", "--batch-size", "128")
    produce(conf, topics.samples, interleaved(n_bad))
    wait_until(lambda: outputs(conf, topics) >= n_bad * 2 // 5, timeout=600)
    rss_early = _rss_mib(proc.pid)
    wait_until(lambda: outputs(conf, topics) >= n_bad * 2, timeout=900)
    rss_late = _rss_mib(proc.pid)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    inputs, lost, dup, dlq = count(conf, topics, committed=False)
    growth = rss_late - rss_early
    ok = alive and lost == 0 and dlq == n_bad and inputs == 2 * n_bad and growth < 64
    return Result(f"{n_bad} fuzzed bad + {n_bad} good interleaved", inputs, lost, dup, dlq, ok,
                  f"consumer {'up' if alive else 'DIED'}; RSS {rss_early:.0f} → {rss_late:.0f} MiB")
