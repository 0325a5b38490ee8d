"""Alert lifecycle per (run_id, host): ``firing`` once N of the last M samples are HighLoad,
``resolved`` when fewer than N of the last M are; never a second ``firing`` while firing.

The window and the firing flag live in the partition's state (consumer/state.py), read and written
through one batch's staged :class:`Changes`, so they survive restarts and rebalances via the changelog."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from perfwatch.consumer.state import Changes, KeyState
from perfwatch.errors import InputError
from perfwatch.verdict import AlertState


@dataclass(frozen=True)
class Hysteresis:
    n: int
    m: int

    @classmethod
    def parse(cls, spec: str) -> Hysteresis:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not match or not 0 < int(match[1]) <= int(match[2]):
            raise InputError(f"hysteresis {spec!r}: expected N/M with 0 < N <= M, e.g. 3/5")
        return cls(int(match[1]), int(match[2]))

    def observe(self, changes: Changes, partition: int, offset: int, key: str, is_high: bool, now: float,
                alert: Callable[[AlertState], str]) -> AlertState | None:
        """Count one sample of ``key`` (read from input ``partition`` at ``offset``). Returns the state the
        key enters, if it changes; ``alert(state)`` renders that alert (kept while firing)."""
        st = changes.get(partition, key) or KeyState()
        if offset <= st.offset:  # already counted (re-read after a crash before the offset commit)
            return None
        highs = st.push(is_high, self.m)
        st.seen, st.offset = now, offset
        state: AlertState | None = None
        if not st.firing and highs >= self.n:
            state, st.firing = "firing", True
            st.alert = alert(state)
        elif st.firing and highs < self.n:
            state, st.firing, st.alert = "resolved", False, None
        changes.put(partition, key, st)
        return state
