"""Hysteresis state without a broker: windows, staging (commit applies, abort leaves no trace), the
changelog record format, replay safety and expiry."""

from __future__ import annotations

import pytest

from perfwatch.consumer.hysteresis import Hysteresis
from perfwatch.consumer.state import CorruptState, KeyState, StateStore, decode, encode

H = Hysteresis(3, 5)


def _alert(state: str) -> str:
    return f'{{"state": "{state}"}}'


def _feed(store: StateStore, highs: list[bool], key: str = "r1/web-1", start: int = 0, now: float = 100.0,
          partition: int = 0) -> list[str]:
    out = []
    for i, high in enumerate(highs):
        changes = store.begin()
        if st := H.observe(changes, partition, start + i, key, high, now + i, _alert):
            out.append(st)
        changes.apply()
    return out


def test_fires_once_and_resolves_once() -> None:
    store = StateStore()
    store.assign(0)
    assert _feed(store, [False] * 4 + [True] * 8 + [False] * 8) == ["firing", "resolved"]


def test_aborted_changes_leave_no_trace() -> None:
    store = StateStore()
    store.assign(0)
    _feed(store, [True, True])
    before = encode(store.get(0, "r1/web-1"))  # type: ignore[arg-type]
    changes = store.begin()
    assert H.observe(changes, 0, 2, "r1/web-1", True, 200.0, _alert) == "firing"
    assert changes.get(0, "r1/web-1").firing  # type: ignore[union-attr] - read-your-writes inside the batch
    del changes  # aborted: never applied
    assert encode(store.get(0, "r1/web-1")) == before  # type: ignore[arg-type]
    assert _feed(store, [True], start=2) == ["firing"]  # the re-processed sample fires, once


def test_a_re_read_sample_is_not_counted_twice() -> None:
    store = StateStore()
    store.assign(0)
    assert _feed(store, [True, True]) == []
    assert _feed(store, [True, True], start=0) == []  # same offsets again (at-least-once re-read)
    assert store.get(0, "r1/web-1").size == 2  # type: ignore[union-attr]
    assert _feed(store, [True], start=2) == ["firing"]


def test_a_new_run_id_starts_a_fresh_episode() -> None:
    store = StateStore()
    store.assign(0)
    assert _feed(store, [True] * 3) == ["firing"]
    assert _feed(store, [True] * 3, key="r2/web-1", start=3) == ["firing"]  # replay under a new run id
    assert _feed(store, [True] * 3, start=6) == []  # the same run id continues its episode


def test_record_round_trip_and_corrupt_values() -> None:
    st = KeyState(0b10110, 5, True, 1234.5, 42, _alert("firing"))
    assert decode(encode(st)) == st
    for bad in (b"{not json", b"\xff\xfe", b"[]", b'{"v": 1}', b'{"v": 2, "w": 1, "n": 1, "f": false, "t": 1, '
                b'"o": 1, "a": null}', b'{"v": 1, "w": "x", "n": 1, "f": false, "t": 1, "o": 1, "a": null}'):
        with pytest.raises(CorruptState):
            decode(bad)


def test_expiry_stages_tombstones_for_idle_keys_only() -> None:
    store = StateStore()
    store.assign(0)
    _feed(store, [True] * 3, key="r1/old", now=100.0)
    _feed(store, [False], key="r1/quiet", now=150.0)
    _feed(store, [True], key="r1/fresh", now=500.0)
    changes = store.expire(before=400.0)
    assert [(k, st.firing) for _, k, st in changes.expired] == [("r1/old", True), ("r1/quiet", False)]
    assert [(p, k, v) for p, k, v in changes.records()] == [(0, b"r1/old", None), (0, b"r1/quiet", None)]
    changes.apply()
    assert len(store) == 1 and store.get(0, "r1/fresh") is not None


def test_expiry_of_many_keys_frees_the_dict() -> None:
    store = StateStore()
    p = store.assign(0)
    for i in range(10_000):
        p.put(f"r/{i}", KeyState(seen=float(i)))
    while changes := store.expire(before=1e9, limit=1000):
        changes.apply()
    assert len(store) == 0 and p.peak <= 1000


def test_changes_to_a_revoked_partition_are_dropped() -> None:
    store = StateStore()
    store.assign(0)
    changes = store.begin()
    H.observe(changes, 0, 0, "r1/a", True, 1.0, _alert)
    store.drop(0)
    changes.apply()
    assert len(store) == 0
