"""The hang floor's window of recent durations keeps its sorted copy up to date as values come and go."""

from __future__ import annotations

import math
import random

from router.engine.live import SAMPLE_WINDOW, _Samples


def _quantile_of(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def test_quantiles_match_a_fresh_sort_of_the_window_as_it_slides() -> None:
    rng = random.Random(16)
    samples = _Samples()
    added: list[float] = []
    for i in range(3 * SAMPLE_WINDOW + 17):
        # Repeated values too: the value leaving the window must take one copy out, not all.
        ms = float(rng.choice((5, 5, 7, 250))) if i % 3 == 0 else rng.uniform(1, 5_000)
        samples.add(ms)
        added.append(ms)
        window = added[-SAMPLE_WINDOW:]
        assert len(samples) == len(window)
        for q in (0.01, 0.5, 0.9, 0.99, 1.0):
            assert samples.quantile(q) == _quantile_of(window, q)


def test_a_nan_is_not_learned() -> None:
    samples = _Samples()
    for ms in (3.0, float("nan"), 1.0, 2.0):
        samples.add(ms)
    assert len(samples) == 3
    assert samples.quantile(0.5) == 2.0
