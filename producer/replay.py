"""Re-publish a recorded run: real time, ×N, or as fast as possible, keeping the original spacing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from perfwatch.console import console
from perfwatch.producer.publisher import Publisher
from perfwatch.producer.recordings import Item, Rejected
from perfwatch.sample import Sample


@dataclass
class ReplaySummary:
    sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0
    stopped: bool = False  # ended early by ``stop`` (Ctrl+C): ``sent`` says how far it got

    @property
    def reasons(self) -> Counter[str]:
        return Counter(r.reason for r in self.rejected)


def replay(items: Sequence[Item], publisher: Publisher, *, speed: float | None = 1.0, new_run_id: str | None = None,
           show_progress: bool = True, stop: threading.Event | None = None) -> ReplaySummary:
    """``speed`` None = as fast as possible; otherwise sample i goes out at (ts_i - ts_0) / speed. A set
    ``stop`` ends it early; what was sent is still flushed and counted."""
    stop = stop or threading.Event()
    summary = ReplaySummary(rejected=[i for i in items if isinstance(i, Rejected)])
    samples = [i for i in items if isinstance(i, Sample)]
    t0 = time.monotonic()
    ts0 = samples[0].ts if samples else None
    columns = (TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress) as bar:
        task = bar.add_task("replay", total=len(samples))
        for s in samples:
            if speed and ts0 is not None and s.ts is not None:
                due = (s.ts - ts0).total_seconds() / speed
                delay = t0 + due - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
            if stop.is_set():
                summary.stopped = True
                break
            if new_run_id:
                s = s.model_copy(update={"run_id": new_run_id})
            publisher.send(s)
            summary.sent += 1
            bar.advance(task)
    stats = publisher.close()
    summary.delivered, summary.failed = stats.delivered, stats.failed
    summary.seconds = time.monotonic() - t0
    return summary
