"""The inference pool: batches run in ONNX Runtime worker threads (it releases the GIL), a batch's rows
split over the idle workers, and batches are collected in the order they were submitted."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from perfwatch.consumer.batch import Batch
from perfwatch.runtime.model import Encoded

# No split part smaller than this: per-sample cost rises steeply below it (int8, 1 thread).
MIN_SPLIT = 16


class Model(Protocol):
    labels: tuple[str, ...]

    def run(self, enc: Encoded) -> np.ndarray: ...


@dataclass
class InFlight:
    """A batch in inference, its rows on one or more workers."""

    batch: Batch
    parts: list[Future[np.ndarray]]

    def done(self) -> bool:
        return all(f.done() for f in self.parts)

    def unfinished(self) -> int:
        return sum(not f.done() for f in self.parts)

    def result(self) -> np.ndarray:
        return np.concatenate([f.result() for f in self.parts])

    def abandon(self) -> None:
        for f in self.parts:
            if not f.cancel():
                f.result()  # running: let ORT finish with it; its result is dropped


class InferencePool:
    """One ORT session, several concurrent run() calls: the session is thread-safe and shares the weights."""

    def __init__(self, model: Model, workers: int, *, min_split: int = MIN_SPLIT,
                 on_run: Callable[[float], None] | None = None) -> None:
        self.model = model
        self.workers = workers
        self.min_split = min_split
        self._on_run = on_run
        self._inflight: deque[InFlight] = deque()  # oldest first
        self._lock = threading.Lock()
        self.seconds = 0.0  # ORT time summed over workers
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="perfwatch-infer")

    def __len__(self) -> int:
        return len(self._inflight)

    def busy(self) -> int:
        """Work handed out and not finished (running or queued), in worker-sized parts."""
        return sum(x.unfinished() for x in self._inflight)

    def submit(self, batch: Batch) -> None:
        """Hand a batch to inference, its rows split across the idle workers: a backlog that built up while
        they were busy is then done in parallel, instead of one worker taking it all while the others (and
        every batch behind it, since collection keeps order) wait. Saturated, no worker is idle at submit
        (work is always queued), so full batches stay whole. Either way the batch is collected as one."""
        parts: list[Future[np.ndarray]]
        if batch.encoded is None:
            done: Future[np.ndarray] = Future()
            done.set_result(np.zeros((0, len(self.model.labels))))
            parts = [done]
        else:
            idle = self.workers - self.busy()
            n = max(1, min(idle, len(batch.encoded) // self.min_split))
            parts = [self._executor.submit(self._run, enc) for enc in batch.encoded.split(n)]
        self._inflight.append(InFlight(batch, parts))

    def _run(self, enc: Encoded) -> np.ndarray:
        t0 = time.perf_counter()
        probs = self.model.run(enc)
        dt = time.perf_counter() - t0
        with self._lock:
            self.seconds += dt
        if self._on_run is not None:
            self._on_run(dt)
        return probs

    def oldest_done(self) -> bool:
        return bool(self._inflight) and self._inflight[0].done()

    def wait(self, timeout: float | None) -> None:
        """Sleep until some part finishes (or the timeout passes)."""
        wait_futures([f for x in self._inflight for f in x.parts if not f.done()], timeout,
                     return_when=FIRST_COMPLETED)

    def pop_oldest(self) -> tuple[Batch, np.ndarray]:
        """Wait for the oldest batch in inference and hand it back with its probabilities."""
        x = self._inflight.popleft()
        return x.batch, x.result()

    def drop_all(self) -> list[Batch]:
        """Forget every batch in inference (oldest first, returned so the caller can rewind)."""
        dropped = []
        while self._inflight:
            x = self._inflight.popleft()
            x.abandon()
            dropped.append(x.batch)
        return dropped

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
