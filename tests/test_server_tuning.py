"""The serving process's collector settings (router/server.py ``tune_collector``, called by ``serve``)."""

from __future__ import annotations

import gc

from router.server import GC_YOUNG_THRESHOLD, tune_collector


def test_the_young_threshold_is_raised_and_the_older_ones_are_kept() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 7, 9)
        tune_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 7, 9)
    finally:
        gc.set_threshold(*before)
