"""Decision-log overhead on the request thread, and the writer thread's CPU per record.

    .venv/bin/python benchmarks/bench_decision_log.py [--requests N]

Builds real ``Routed`` requests (``Pipeline.prepare`` over the classifier corpus, with varied
limits and exploration on), then times ``DecisionRecorder.finished(...)`` — the only call the request
thread makes (remember the id for feedback, queue the item) — while the writer thread renders and
writes the JSON lines to a file in the same process (so GIL hand-offs are in the numbers). Requests
arrive at a steady rate (``--rate`` per second, default 2,000, above what one gateway worker serves)
and the thread sleeps in between, as an event loop waits in epoll: back-to-back calls in a tight
loop would measure the queue filling up, not a request. An empty timed section before each call is
the floor (machine noise: other processes on shared cores, GIL hand-offs); the CPU-time series has
its own floor (reading a thread's CPU clock is a syscall, which costs and has a tail of its own),
and a second one does the same work as ``finished()`` without our code (a dict store, a tuple put
in a list): when its p99 is as high as ``finished()``'s, the tail is the machine's, not ours. Also reports the
writer's CPU time per record (paid off the request thread) and drops. Wall time and the thread's
own CPU time are both reported; the target (p99 <= 20 µs) is checked on CPU time, since on shared
cores the wall-time tail is mostly other processes preempting this one.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decision import ENV, load_prompts

from router.classifier import TaskClassifier
from router.dispatch.upstream import Usage
from router.engine.live import LiveState
from router.exchange import Routed
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.pipeline.core import Pipeline
from router.policy.loader import load_policy_text
from router.server import tune_collector
from router.settings import PACKAGED_POLICY
from router.tuning.recorder import DecisionRecorder

TARGET_P99_US = 20.0


def build_requests(n_prompts: int) -> list[Routed]:
    text = PACKAGED_POLICY.read_text().replace("classifier:\n", "exploration: {rate: 0.1}\nclassifier:\n")
    loaded = load_policy_text(text, env=ENV)

    class Fixed:
        current = loaded

    serving = Pipeline(policies=Fixed(), classifier=TaskClassifier.load(), live=LiveState(loaded.policy),
                       dispatcher=None, metrics=RouterMetrics(), tracer=Tracer(None),  # type: ignore[arg-type]
                       access_log=None)  # type: ignore[arg-type]
    routed = []
    for i, prompt in enumerate(load_prompts(n_prompts)):
        body = {"model": "auto", "messages": [{"role": "user", "content": prompt}],
                "router": {"max_cost_usd": [1.0, 0.01, 0.002][i % 3]}}
        try:
            routed.append(serving.prepare(body, {}, dry_run=True))
        except Exception:  # an infeasible variant is simply not part of the sample
            continue
    return [r for r in routed if r.decision.chosen is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="requests per second")
    args = parser.parse_args()
    requests = build_requests(60)
    usage = Usage(input_tokens=120, output_tokens=300, reasoning_tokens=40)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = DecisionRecorder(metrics=RouterMetrics(), log_target=str(Path(tmp) / "decisions.jsonl"))
        writer = recorder.log._thread
        gc.collect()
        gc.freeze()
        tune_collector()  # the serving process's collector settings (router.server), not CPython's defaults
        timings: list[int] = []
        floor: list[int] = []
        cpu: list[int] = []  # the thread's own CPU time: wall time minus time preempted by other processes
        cpu_floor: list[int] = []  # reading the thread's CPU clock is a syscall: its own cost and tail
        # The same work as finished() without our code (a dict store, a 10-tuple queued): its tail is
        # what the machine does to any few µs of Python (interrupts, cache misses after the idle gap).
        same_cpu: list[int] = []
        sink: dict[str, tuple[str, str, float]] = {}
        box: list[tuple[object, ...]] = []
        interval = 1.0 / args.rate
        next_at = time.perf_counter()
        for i in range(args.requests):
            routed = requests[i % len(requests)]
            cand = routed.chosen
            wait = next_at - time.perf_counter()
            if wait > 0:  # idle like an event loop in epoll (the GIL is free meanwhile)
                time.sleep(wait)
            next_at += interval
            # The floor: an empty timed section right before, so machine noise (other processes on
            # shared cores, GIL hand-offs to the writer) shows up in both series alike.
            t0 = time.perf_counter_ns()
            floor.append(time.perf_counter_ns() - t0)
            c0 = time.thread_time_ns()
            cpu_floor.append(time.thread_time_ns() - c0)
            c0 = time.thread_time_ns()
            sink[routed.request_id] = (cand.route, routed.label.task_type, time.monotonic())
            box.append((routed, "ok", cand.route, cand.mode, usage, 0.0012, 0, 0.4, 0.05, time.time()))
            same_cpu.append(time.thread_time_ns() - c0)
            if len(box) >= 64:
                box.clear()
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            recorder.finished(routed, route=cand.route, mode=cand.mode, status="ok", usage=usage, cost=0.0012,
                              fallbacks=0, duration_s=0.4, ttft_s=0.05)
            timings.append(time.perf_counter_ns() - t0)
            cpu.append(time.thread_time_ns() - c0)
        recorder.log.flush(timeout=60)
        writer_cpu = _thread_cpu_s(writer)
        written = recorder.log.dropped
        size = (Path(tmp) / "decisions.jsonl").stat().st_size
        recorder.close()
    timings.sort()
    floor.sort()
    us = [t / 1000 for t in timings]
    p50, p99, p999 = (us[int(len(us) * q)] for q in (0.5, 0.99, 0.999))
    f50, f99, f999 = (floor[int(len(floor) * q)] / 1000 for q in (0.5, 0.99, 0.999))
    cpu.sort()
    c50, c99, c999 = (cpu[int(len(cpu) * q)] / 1000 for q in (0.5, 0.99, 0.999))
    cpu_floor.sort()
    cf50, cf99, cf999 = (cpu_floor[int(len(cpu_floor) * q)] / 1000 for q in (0.5, 0.99, 0.999))
    same_cpu.sort()
    s50, s99, s999 = (same_cpu[int(len(same_cpu) * q)] / 1000 for q in (0.5, 0.99, 0.999))
    print(f"decision log, {args.requests} requests at {args.rate:.0f}/s ({len(requests)} distinct decisions, "
          f"{os.cpu_count()} cpus)")
    print(f"  request thread  recorder.finished(): p50 {p50:.2f} µs  p99 {p99:.2f} µs  p99.9 {p999:.2f} µs  "
          f"mean {statistics.fmean(us):.2f} µs")
    print(f"  request thread  its CPU time:         p50 {c50:.2f} µs  p99 {c99:.2f} µs  p99.9 {c999:.2f} µs")
    print(f"  floor           empty timed section:  p50 {f50:.2f} µs  p99 {f99:.2f} µs  p99.9 {f999:.2f} µs")
    print(f"  floor           its CPU time:         p50 {cf50:.2f} µs  p99 {cf99:.2f} µs  p99.9 {cf999:.2f} µs")
    print(f"  same work       dict store + tuple:   p50 {s50:.2f} µs  p99 {s99:.2f} µs  p99.9 {s999:.2f} µs (CPU)")
    if writer_cpu is not None:
        print(f"  writer thread   {writer_cpu / args.requests * 1e6:.1f} µs CPU per record (off the request thread)")
    print(f"  written {size / args.requests:.0f} bytes/record, drops {written or 'none'}")
    ok = c99 <= TARGET_P99_US
    print(f"  target p99 <= {TARGET_P99_US:g} µs of request-thread CPU: {'met' if ok else 'MISSED'} (wall p99 "
          f"{p99:.1f} µs also counts time this thread was preempted; load average {os.getloadavg()[0]:.1f})")
    return 0 if ok else 1


def _thread_cpu_s(thread: threading.Thread) -> float | None:
    """CPU seconds of one thread of this process (Linux /proc), None elsewhere."""
    try:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
