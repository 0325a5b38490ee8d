"""Python's cyclic garbage collector, set for a long-running loop.

Python starts a collection every 700 net allocations and, now and then, a full one that walks every
object the process holds. The loop allocates a few dozen short-lived objects per sample (messages,
samples, dicts, records) that reference counting frees, yet they still trigger collections: at the loop's
ceiling the collector took 1.3 s of a 15 s run, full passes ~50 ms each, stalling the loop. While a loop
runs, what the process built at startup (the model, the tokenizer, the clients, imported modules) is
moved out of the collector's sight (``gc.freeze``) and young collections wait for ``gen0`` allocations.
Garbage cycles are still found, just in fewer, smaller passes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.RLock()  # re-entrant: gc.collect() below may run finalizers
_users = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def steady_heap(gen0: int) -> Iterator[None]:
    """For the loop's lifetime: freeze the startup heap and collect the young generation every ``gen0``
    allocations (0: leave the collector alone). Nested and concurrent loops in one process share one
    setting; the last to leave restores Python's."""
    global _users, _saved
    if gen0 <= 0:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            gc.collect()  # what startup left as garbage is freed, not frozen
            gc.freeze()
            gc.set_threshold(gen0, _saved[1], _saved[2])
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                gc.unfreeze()
                _saved = None
