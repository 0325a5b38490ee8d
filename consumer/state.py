"""Hysteresis state per assigned input partition, and the staging of one batch's changes to it.

A key (``run_id/host``) has an N-of-M window (a bit field, newest sample in bit 0), whether it is firing,
when it last saw a sample (wall clock, seconds) and the input offset of that sample. A batch's changes are
staged in a :class:`Changes`; they reach the store only when the batch is committed (``apply``), so an
aborted exactly-once batch leaves no trace (``Changes`` is simply dropped). Every change is also a changelog
record (``encode``; a removed key is a tombstone), partition i of the changelog for input partition i.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

STATE_FORMAT = 1


class CorruptState(ValueError):
    """A changelog value that is not a state record of this format."""


@dataclass(slots=True)
class KeyState:
    bits: int = 0  # the window: bit i is the (i+1)-th newest sample, 1 = HighLoad
    size: int = 0  # samples in the window (≤ M)
    firing: bool = False
    seen: float = 0.0  # wall-clock time of the last sample (expiry is judged on it)
    offset: int = -1  # input offset of the last sample: a re-read older sample is not counted twice
    alert: str | None = None  # while firing: the firing alert (JSON), the template of its `resolved`

    def push(self, high: bool, m: int) -> int:
        """Add a sample to the window; returns how many of the last ``m`` are high."""
        self.bits = ((self.bits << 1) | int(high)) & ((1 << m) - 1)
        self.size = min(self.size + 1, m)
        return self.bits.bit_count()

    def copy(self) -> KeyState:
        return KeyState(self.bits, self.size, self.firing, self.seen, self.offset, self.alert)


def encode(st: KeyState) -> bytes:
    return json.dumps({"v": STATE_FORMAT, "w": st.bits, "n": st.size, "f": st.firing, "t": round(st.seen, 3),
                       "o": st.offset, "a": st.alert}, separators=(",", ":")).encode()


def decode(value: bytes) -> KeyState:
    try:
        d = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptState(f"not JSON ({exc})") from None
    if not isinstance(d, dict) or d.get("v") != STATE_FORMAT:
        raise CorruptState(f"not a state record of format {STATE_FORMAT}")
    w, n, f, t, o, a = (d.get(k) for k in "wnftoa")
    if not (isinstance(w, int) and isinstance(n, int) and isinstance(f, bool) and isinstance(t, int | float)
            and isinstance(o, int) and (a is None or isinstance(a, str)) and w >= 0 and n >= 0):
        raise CorruptState("a field is missing or has the wrong type")
    return KeyState(w, n, f, float(t), o, a)


@dataclass
class PartitionState:
    """One input partition's keys, least recently seen first (so expiry looks only at the front)."""

    keys: OrderedDict[str, KeyState] = field(default_factory=OrderedDict)
    peak: int = 0

    def put(self, key: str, st: KeyState) -> None:
        self.keys[key] = st
        self.keys.move_to_end(key)
        self.peak = max(self.peak, len(self.keys))

    def delete(self, key: str) -> None:
        self.keys.pop(key, None)
        if len(self.keys) < self.peak // 4:  # a dict never shrinks by deletion: rebuild it once mostly empty
            self.keys = OrderedDict(self.keys)
            self.peak = len(self.keys)

    def idle(self, before: float) -> Iterator[tuple[str, KeyState]]:
        for key, st in self.keys.items():
            if st.seen >= before:
                return
            yield key, st


@dataclass
class StateStore:
    partitions: dict[int, PartitionState] = field(default_factory=dict)

    def get(self, partition: int, key: str) -> KeyState | None:
        p = self.partitions.get(partition)
        return None if p is None else p.keys.get(key)

    def assign(self, partition: int) -> PartitionState:
        """A new, empty state for a newly assigned partition (to be restored from its changelog)."""
        self.partitions[partition] = PartitionState()
        return self.partitions[partition]

    def drop(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(p.keys) for p in self.partitions.values())

    def begin(self) -> Changes:
        return Changes(self)

    def expire(self, before: float, limit: int = 10_000) -> Changes:
        """Stage the removal of keys without a sample since ``before`` (at most ``limit`` per call, so one
        sweep stays a small transaction). The caller emits a `resolved` for those still firing."""
        changes = self.begin()
        for partition, p in self.partitions.items():
            for key, st in p.idle(before):
                if len(changes) >= limit:
                    return changes
                changes.expired.append((partition, key, st))
                changes.put(partition, key, None)
        return changes


@dataclass
class Changes:
    """One batch's staged changes: read-your-writes over the store, applied only on commit."""

    store: StateStore
    staged: dict[tuple[int, str], KeyState | None] = field(default_factory=dict)
    expired: list[tuple[int, str, KeyState]] = field(default_factory=list)
    # What ``apply`` overwrote: at-least-once applies a batch at once, and takes it back if its output fails.
    undo: dict[tuple[int, str], KeyState | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.staged)

    def get(self, partition: int, key: str) -> KeyState | None:
        """The key's state for modification (a copy: the store itself changes only in ``apply``)."""
        if (partition, key) in self.staged:
            return self.staged[(partition, key)]
        st = self.store.get(partition, key)
        return None if st is None else st.copy()

    def put(self, partition: int, key: str, st: KeyState | None) -> None:
        self.staged[(partition, key)] = st

    def records(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(partition, key, value) of each changelog record; value None is a tombstone."""
        for (partition, key), st in self.staged.items():
            yield partition, key.encode(), None if st is None else encode(st)

    def apply(self) -> None:
        for (partition, key), st in self.staged.items():
            p = self.store.partitions.get(partition)
            if p is None:  # revoked meanwhile: its new owner restores it from the changelog
                continue
            self.undo.setdefault((partition, key), p.keys.get(key))
            if st is None:
                p.delete(key)
            else:
                p.put(key, st)
        self.staged.clear()

    def revert(self) -> None:
        """Take back what ``apply`` did (later batches' changes must be reverted first)."""
        for (partition, key), st in self.undo.items():
            p = self.store.partitions.get(partition)
            if p is None:
                continue
            if st is None:
                p.delete(key)
            else:
                p.put(key, st)
        self.undo.clear()
