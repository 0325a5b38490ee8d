"""Live host metrics with psutil: CPU %, memory %, disk % (of one mount) every interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil

from perfwatch.producer.publisher import Publisher, PublishStats
from perfwatch.sample import Sample


def live_samples(run_id: str, host: str, interval_s: float = 1.0, duration_s: float | None = None,
                 disk_path: str = "/", stop: threading.Event | None = None) -> Iterator[Sample]:
    """Yield one sample per interval until ``duration_s`` (or forever), or until ``stop`` is set."""
    stop = stop or threading.Event()
    psutil.cpu_percent(None)  # the first reading primes the counter
    start = time.monotonic()
    n = 0
    while duration_s is None or (n + 1) * interval_s <= duration_s + 1e-9:
        n += 1
        # Sleep to the next tick of the schedule, not a fixed interval: no drift over long runs.
        delay = start + n * interval_s - time.monotonic()
        if stop is not None and stop.wait(max(0.0, delay)):
            return
        if stop is None and delay > 0:
            time.sleep(delay)
        vm = psutil.virtual_memory()
        yield Sample(run_id=run_id, host=host, ts=datetime.now(UTC), cpu_pct=psutil.cpu_percent(None),
                     mem_pct=vm.percent, disk_pct=psutil.disk_usage(disk_path).percent,
                     mem_free_gb=round(vm.available / 2**30, 3))


def publish_live(samples: Iterable[Sample], publisher: Publisher, record: Path | None = None,
                 on_sample: Callable[[Sample], None] | None = None) -> PublishStats:
    """Send each sample as it comes (and append it to a JSONL recording, flushed per line so that a
    crash loses nothing already shown); return the publisher's delivery counts."""
    rec = record.open("a") if record else None
    try:
        with publisher as pub:
            for sample in samples:
                pub.send(sample)
                if rec:
                    rec.write(sample.model_dump_json(exclude_none=True) + "\n")
                    rec.flush()
                if on_sample:
                    on_sample(sample)
        return publisher.stats
    finally:
        if rec:
            rec.close()
