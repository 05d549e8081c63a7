"""`runtime.heap.settle_heap`: what the long-running processes (serve, worker, sandbox) call once started."""

from __future__ import annotations

import gc

from tomato.runtime.heap import THRESHOLDS, settle_heap


def test_settle_heap_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0  # the objects alive now are out of the collector's sight
        assert THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
