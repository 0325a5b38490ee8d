"""Re-publish a recorded run: real time, ×N, or as fast as possible, keeping the original spacing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from perfwatch.console import console
from perfwatch.producer.ordering import Recording
from perfwatch.producer.publisher import Publisher
from perfwatch.producer.recordings import Item, Rejected


@dataclass
class ReplaySummary:
    sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)  # the first ones, to show
    reasons: Counter[str] = field(default_factory=Counter)  # every rejected line, by reason
    delivered: int = 0
    failed: int = 0
    seconds: float = 0.0
    stopped: bool = False  # ended early by ``stop`` (Ctrl+C): ``sent`` says how far it got

    @property
    def rejected_count(self) -> int:
        return sum(self.reasons.values())


def replay(items: Iterable[Item], publisher: Publisher, *, speed: float | None = 1.0, new_run_id: str | None = None,
           show_progress: bool = True, stop: threading.Event | None = None) -> ReplaySummary:
    """Samples go out in time order (equal times in recorded order); ``speed`` None = as fast as
    possible, otherwise sample i goes out at (ts_i - ts_earliest) / speed. A set ``stop`` ends it early;
    what was sent is still flushed and counted."""
    with items if isinstance(items, Recording) else Recording(items) as recording:
        return _replay(recording, publisher, speed, new_run_id, show_progress, stop or threading.Event())


def _replay(recording: Recording, publisher: Publisher, speed: float | None, new_run_id: str | None,
            show_progress: bool, stop: threading.Event) -> ReplaySummary:
    summary = ReplaySummary(rejected=list(recording.rejected), reasons=Counter(recording.reasons))
    t0 = time.monotonic()
    ts0: datetime | None = None
    columns = (TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress) as bar:
        task = bar.add_task("replay", total=recording.n_samples)
        for s in recording.samples():
            ts0 = ts0 or s.ts
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
