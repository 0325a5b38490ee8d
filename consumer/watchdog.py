"""A way out of a blocking call that never returns (librdkafka can block in send_offsets_to_transaction
past its own timeout when the group coordinator dies: confluentinc/librdkafka#5456, #5511). The loop arms
a deadline around each blocking transactional call; a watcher thread that sees one passed logs every
thread's stack and ends the process, so the supervisor (Docker, Kubernetes, systemd) restarts it and the
stable transactional id fences the stuck producer."""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("perfwatch.consumer")

EXIT_CODE = 70  # EX_SOFTWARE: the supervisor restarts it


def thread_dump() -> str:
    """Every thread's stack, as faulthandler writes it (works even when a thread holds a lock)."""
    with tempfile.TemporaryFile("w+") as f:
        faulthandler.dump_traceback(f, all_threads=True)
        f.seek(0)
        return f.read()


def exit_process(what: str, dump: str) -> None:
    log.critical("%s passed its deadline; exiting so that a fresh process takes over. Threads:\n%s", what, dump)
    for h in logging.getLogger().handlers + log.handlers:
        h.flush()
    sys.stderr.flush()
    os._exit(EXIT_CODE)


class Watchdog:
    def __init__(self, on_expire: Callable[[str, str], None] = exit_process, every_s: float = 0.25) -> None:
        self.on_expire = on_expire
        self.every_s = every_s
        self._lock = threading.Lock()
        self._armed: tuple[str, float] | None = None  # what, monotonic deadline
        self._stop = threading.Event()
        self.expired: str | None = None
        self._thread = threading.Thread(target=self._watch, name="perfwatch-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def deadline(self, what: str, seconds: float) -> Iterator[None]:
        """Run the block under a deadline (one at a time: a checkpoint's commit runs in its own thread, but the
        loop makes no blocking Kafka call until that commit has ended)."""
        with self._lock:
            self._armed = (what, time.monotonic() + seconds)
        try:
            yield
        finally:
            with self._lock:
                self._armed = None

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                armed = self._armed
            if armed is not None and time.monotonic() > armed[1] and self.expired is None:
                self.expired = armed[0]
                self.on_expire(armed[0], thread_dump())

    def close(self) -> None:
        self._stop.set()
