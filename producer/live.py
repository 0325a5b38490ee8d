"""Live host metrics: this host via psutil, or many hosts via their node_exporter, published every interval."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from perfwatch.producer.publisher import Publisher, PublishStats
from perfwatch.producer.schedule import ticks
from perfwatch.sample import Sample

if TYPE_CHECKING:
    from perfwatch.producer.node_exporter import FleetSettings


def psutil_sample(run_id: str, host: str, disk_path: str = "/") -> Sample:
    """This host now. CPU % is since the previous call (the first call of a process only primes it)."""
    vm = psutil.virtual_memory()
    return Sample(run_id=run_id, host=host, ts=datetime.now(UTC), cpu_pct=psutil.cpu_percent(None),
                  mem_pct=vm.percent, disk_pct=psutil.disk_usage(disk_path).percent,
                  mem_free_gb=round(vm.available / 2**30, 3))


def live_samples(run_id: str, host: str, interval_s: float = 1.0, duration_s: float | None = None,
                 disk_path: str = "/", stop: threading.Event | None = None) -> Iterator[Sample]:
    """Yield one sample per interval until ``duration_s`` (or forever), or until ``stop`` is set."""
    psutil.cpu_percent(None)  # the first reading primes the counter
    for _ in ticks(interval_s, duration_s, stop):
        yield psutil_sample(run_id, host, disk_path)


def host_samples(run_id: str, interval_s: float, duration_s: float | None = None,
                 stop: threading.Event | None = None, *, host: str, disk_path: str = "/",
                 fleet: FleetSettings | None = None) -> Iterator[Sample]:
    """Samples of the fleet's node_exporter hosts when it has any, else of this host (psutil)."""
    if fleet is None or not fleet.hosts:
        return live_samples(run_id, host, interval_s, duration_s, disk_path, stop)
    from perfwatch.producer.node_exporter import Fleet, fleet_samples

    scraper = Fleet(fleet.targets(), interval_s, fleet.timeout_s, fleet.max_backoff_s)
    return fleet_samples(scraper, run_id, interval_s, duration_s, stop)


def publish_live(kafka_conf: dict[str, Any], topic: str, samples: Iterable[Sample], record: Path | None = None,
                 echo: Callable[[Sample], None] | None = None) -> PublishStats:
    """Publish samples as they come (keyed run_id/host), appending each to a JSONL recording if asked."""
    rec = record.open("a") if record else None
    try:
        with Publisher(kafka_conf, topic) as pub:
            for sample in samples:
                pub.send(sample)
                if rec:
                    rec.write(sample.model_dump_json(exclude_none=True) + "\n")
                    rec.flush()
                if echo:
                    echo(sample)
    finally:
        if rec:
            rec.close()
    return pub.stats
