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


def _percentiles(times_ns: list[int]) -> dict[str, float]:
    times_ns.sort()
    return {
        "p50": round(times_ns[len(times_ns) // 2] / 1000, 1),
        "p99": round(times_ns[min(int(len(times_ns) * 0.99), len(times_ns) - 1)] / 1000, 1),
        "max": round(times_ns[-1] / 1000, 1),
    }


def run(classifier: TaskClassifier, *, repeats: int = 2000, warmup: int = 50) -> dict[str, dict[str, float]]:
    """Per size class: p50 / p99 / max wall-clock microseconds per classify() call on one thread, and the
    same for the thread's CPU time (`cpu_*`), which leaves out time the OS gave to other processes."""
    out: dict[str, dict[str, float]] = {}
    for size in SIZES:
        messages = sample_messages(size)
        for _ in range(warmup):
            classifier.classify(messages)
        wall, cpu = [], []
        for _ in range(repeats):
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            classifier.classify(messages)
            wall.append(time.perf_counter_ns() - t0)
            cpu.append(time.thread_time_ns() - c0)
        out[size] = {
            "chars": float(sum(len(m["content"]) for m in messages)),
            **_percentiles(wall),
            **{f"cpu_{k}": v for k, v in _percentiles(cpu).items()},
        }
    return out
