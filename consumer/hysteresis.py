"""Alert lifecycle per (run_id, host): ``firing`` once N of the last M samples are HighLoad,
``resolved`` when fewer than N of the last M are; never a second ``firing`` while firing."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from perfwatch.errors import InputError
from perfwatch.verdict import AlertState


@dataclass
class _KeyState:
    window: deque[bool]
    firing: bool = False

    def observe(self, is_high: bool, n: int) -> AlertState | None:
        self.window.append(is_high)
        highs = sum(self.window)
        if not self.firing and highs >= n:
            self.firing = True
            return "firing"
        if self.firing and highs < n:
            self.firing = False
            return "resolved"
        return None


@dataclass
class Hysteresis:
    n: int
    m: int
    states: dict[str, _KeyState] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Hysteresis:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not match or not 0 < int(match[1]) <= int(match[2]):
            raise InputError(f"hysteresis {spec!r}: expected N/M with 0 < N <= M, e.g. 3/5")
        return cls(int(match[1]), int(match[2]))

    def observe(self, key: str, is_high: bool) -> AlertState | None:
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = _KeyState(deque(maxlen=self.m))
        return st.observe(is_high, self.n)

    def staged(self) -> Staged:
        """Updates kept apart from this state until ``apply()``: a batch's, applied once it is committed."""
        return Staged(self)

    def restore(self, key: str, state: AlertState) -> None:
        """Take over a key's state from the alerts topic after a rebalance (its window is not on the
        topic: a firing key restarts with a full-high window, so it resolves only on fresh evidence)."""
        firing = state == "firing"
        self.states[key] = _KeyState(deque([firing] * self.m, maxlen=self.m), firing)


@dataclass
class Staged:
    """One batch's hysteresis updates on copies of the keys it touches: applied when the batch is
    committed, dropped when its transaction aborts, so an aborted batch leaves no trace."""

    base: Hysteresis
    states: dict[str, _KeyState] = field(default_factory=dict)

    def observe(self, key: str, is_high: bool) -> AlertState | None:
        st = self.states.get(key)
        if st is None:
            orig = self.base.states.get(key)
            st = self.states[key] = (_KeyState(deque(orig.window, maxlen=self.base.m), orig.firing) if orig
                                     else _KeyState(deque(maxlen=self.base.m)))
        return st.observe(is_high, self.base.n)

    def apply(self) -> None:
        self.base.states.update(self.states)
        self.states = {}
