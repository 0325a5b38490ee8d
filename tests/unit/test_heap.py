"""The loop's garbage-collector setting: on while a loop runs, Python's own restored after the last one."""

from __future__ import annotations

import gc
import weakref

import pytest
from pydantic import ValidationError

from perfwatch.consumer.heap import steady_heap
from perfwatch.settings import ConsumerSettings


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_the_startup_heap_is_frozen_and_young_collections_wait_while_a_loop_runs() -> None:
    before = gc.get_threshold()
    with steady_heap(10_000):
        assert gc.get_threshold() == (10_000, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_cycles_made_while_the_loop_runs_are_still_collected() -> None:
    with steady_heap(1_000):
        ref = weakref.ref(_Node())
        junk = [[i] for i in range(5_000)]  # allocations past gen0: young collections still run
        del junk
        assert ref() is None


def test_the_last_of_several_loops_restores_pythons_setting() -> None:
    before = gc.get_threshold()
    outer = steady_heap(5_000)
    outer.__enter__()
    with steady_heap(5_000):
        pass
    assert gc.get_threshold()[0] == 5_000  # the outer loop still runs
    outer.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    with steady_heap(0):
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_threshold_below_pythons_own_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="at least 700"):
        ConsumerSettings(gc_gen0=5)
    assert ConsumerSettings(gc_gen0=0).gc_gen0 == 0
