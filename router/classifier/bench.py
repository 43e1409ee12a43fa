"""Latency measurement shared by `benchmarks/bench_classifier.py` and the card written by training."""

from __future__ import annotations

import time
from typing import Any, Final

from router.classifier.model import TaskClassifier

# Size classes of the acceptance criteria: short (< 500 chars), medium (~4k chars), long (100k chars).
SIZES: Final = {"short": 400, "medium": 4_000, "long": 100_000}
TARGET_P99_US: Final = {"short": 1_000, "medium": 1_000, "long": 5_000}

_PROSE = (
    "The committee reviewed the quarterly figures and asked the team to explain why the delivery dates "
    "slipped in the northern region. Several members wanted a clearer plan for the next release, with "
    "owners and dates for each step, and a summary of the risks that remain open. "
)
_QUESTION = "Given the notes above, what were the three main decisions, and who owns each follow-up?"


def sample_text(size: str) -> str:
    """A deterministic prompt of the size class: running prose, then the question."""
    target = SIZES[size]
    body = (_PROSE * (target // len(_PROSE) + 1))[: max(target - len(_QUESTION) - 2, 0)]
    return f"{body}\n\n{_QUESTION}" if size != "short" else _QUESTION + " " + _PROSE[:250]


def sample_messages(size: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": sample_text(size)},
    ]


def run(classifier: TaskClassifier, *, repeats: int = 2000, warmup: int = 50) -> dict[str, dict[str, float]]:
    """p50 / p99 / max microseconds per classify() call, single thread, per size class."""
    out: dict[str, dict[str, float]] = {}
    for size in SIZES:
        messages = sample_messages(size)
        for _ in range(warmup):
            classifier.classify(messages)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            classifier.classify(messages)
            times.append(time.perf_counter_ns() - t0)
        times.sort()
        out[size] = {
            "chars": float(sum(len(m["content"]) for m in messages)),
            "p50": round(times[len(times) // 2] / 1000, 1),
            "p99": round(times[min(int(len(times) * 0.99), len(times) - 1)] / 1000, 1),
            "max": round(times[-1] / 1000, 1),
        }
    return out
