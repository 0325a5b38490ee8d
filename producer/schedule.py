"""The tick schedule of live sources: tick n at start + n × interval, so long runs do not drift."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Protocol


class Stop(Protocol):
    """threading.Event, or gevent.event.Event inside Locust."""

    def wait(self, timeout: float | None = None) -> bool: ...


def ticks(interval_s: float, duration_s: float | None = None, stop: Stop | None = None) -> Iterator[int]:
    """Yield 1, 2, … at each tick until ``duration_s`` has passed (or forever), or until ``stop`` is set."""
    stop = stop if stop is not None else threading.Event()
    start = time.monotonic()
    n = 0
    while duration_s is None or (n + 1) * interval_s <= duration_s + 1e-9:
        n += 1
        if stop.wait(max(0.0, start + n * interval_s - time.monotonic())):
            return
        yield n
