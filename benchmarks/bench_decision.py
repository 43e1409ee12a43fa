"""Classify + decide time per request, single thread, on a few hundred varied prompts.

    .venv/bin/python benchmarks/bench_decision.py [--rounds N] [--policy FILE] [--no-classifier]

For each request: ``extract_facts`` + ``decide`` (the routing decision against live state with a
busy engine queue and learned latencies), the classifier on its own, and the two together; also
``Pipeline.prepare`` (body validation, controls, classify, decide) for reference. Prompts come from
``classifiers/data/*.jsonl`` when present (else a built-in set), varied further with images, tools,
``max_tokens``, forced modes, ceilings and budgets. Prints p50 / p99 / max in microseconds.
Exit status 1 if the decision's p99 exceeds the target (0.5 ms on top of the classifier).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from router.engine.decide import Label, Limits, decide
from router.engine.live import LiveState
from router.engine.request_facts import extract_facts
from router.policy.loader import LoadedPolicy, load_policy_file
from router.settings import PACKAGED_POLICY

REPO = Path(__file__).resolve().parent.parent
TARGET_DECIDE_P99_US = 500.0
ENV = {"KIMI_API_BASE": "http://kimi.bench/v1", "KIMI_METRICS_URL": "http://kimi.bench/metrics",
       "OPENAI_API_KEY": "bench", "ANTHROPIC_API_KEY": "bench"}
BUILT_IN = [
    "What is the capital of Australia?",
    "Prove that the square root of 2 is irrational.",
    "Write a Python function that parses ISO-8601 durations, with tests.",
    "Book me a table for two tomorrow at 8pm and add it to my calendar.",
    "Compare the top 20 open-source vector databases on licence, scaling and filtering; one row each.",
    "Write a short poem about the sea at night.",
    "Summarise the following contract and list every obligation of the supplier. " + "Clause text. " * 800,
    "Why does my React list re-render on every keystroke?",
]
TOOL = {"type": "function", "function": {"name": "search", "description": "web search",
                                         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def load_prompts(limit_per_file: int) -> list[str]:
    prompts: list[str] = []
    for path in sorted((REPO / "classifiers" / "data").glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in itertools.islice(lines, limit_per_file):
                text = json.loads(line).get("text")
                if isinstance(text, str) and text:
                    prompts.append(text)
    return prompts or BUILT_IN


def requests(prompts: list[str]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(body, headers) pairs: each prompt once plain, and every few with one variation."""
    out: list[tuple[dict[str, Any], dict[str, str]]] = []
    variations: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({}, {}), ({"tools": [TOOL]}, {}), ({"max_tokens": 300}, {}), ({"model": "auto:instant"}, {}),
        ({}, {"x-router-max-cost": "0.002"}), ({}, {"x-router-latency-budget": "15000"}),
        ({"stream": True}, {}), ({"image": True}, {}),
    ]
    for i, prompt in enumerate(prompts):
        extra, headers = variations[i % len(variations)]
        content: Any = prompt
        if extra.get("image"):
            content = [{"type": "text", "text": prompt}, IMAGE]
        body = {"model": "auto", "messages": [{"role": "user", "content": content}],
                **{k: v for k, v in extra.items() if k != "image"}}
        out.append((body, headers))
    return out


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    us = sorted(s / 1000 for s in samples_ns)
    return {"p50": statistics.median(us), "p99": us[min(len(us) - 1, int(len(us) * 0.99))], "max": us[-1]}


def busy_live_state(loaded: LoadedPolicy) -> LiveState:
    """Live state as in production: learned latencies, a queue on Kimi, some requests in flight."""
    live = LiveState(loaded.policy)
    for route in loaded.policy.routes:
        for _ in range(5):
            live.observe_latency(route, ttft_ms=350, output_tokens=400, generation_s=6.0)
    live.set_queue("kimi", waiting=3, running=48, kv_usage=0.7)
    live.add_inflight("kimi", 12)
    return live


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="passes over the request set")
    parser.add_argument("--per-file", type=int, default=50, help="prompts taken from each data file")
    parser.add_argument("--policy", type=Path, default=PACKAGED_POLICY)
    parser.add_argument("--no-classifier", action="store_true", help="benchmark the decision alone")
    args = parser.parse_args(argv)

    loaded = load_policy_file(args.policy, env=ENV)
    policy = loaded.policy
    live = busy_live_state(loaded)
    classifier: Any = None
    if not args.no_classifier:
        try:
            from router.classifier import TaskClassifier

            classifier = TaskClassifier.load()
        except Exception as exc:  # the artifact may be missing or being retrained
            print(f"classifier unavailable ({type(exc).__name__}: {exc}); benchmarking the decision alone")
    work = requests(load_prompts(args.per_file))
    labels = [Label(t) for t in ("simple", "reasoning", "coding", "agentic", "decomposable", "creative",
                                 "long_context", "vision")]
    cfg = policy.classifier
    defaults = policy.defaults

    def limits_of(headers: dict[str, str]) -> Limits:
        return Limits(min(defaults.max_cost_usd, float(headers.get("x-router-max-cost", defaults.max_cost_usd))),
                      min(defaults.latency_budget_ms,
                          float(headers.get("x-router-latency-budget", defaults.latency_budget_ms))))

    decide_ns: list[int] = []
    classify_ns: list[int] = []
    both_ns: list[int] = []
    gc.collect()
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for i, (body, headers) in enumerate(work):
            forced = body["model"][5:] if body["model"].startswith("auto:") else None
            t0 = time.perf_counter_ns()
            if classifier is not None:
                result = classifier.classify(body["messages"], tools=body.get("tools"),
                                             confidence_floor=cfg.confidence_floor, fallback=cfg.fallback_task_type)
                label = Label(result.task_type, result.confidence, result.answer_length, result.subtasks)
            else:
                label = labels[i % len(labels)]
            t1 = time.perf_counter_ns()
            facts = extract_facts(body)
            decision = decide(policy, facts, label, limits_of(headers), live, forced_mode=forced)
            t2 = time.perf_counter_ns()
            assert decision.candidates
            if round_index:
                classify_ns.append(t1 - t0)
                decide_ns.append(t2 - t1)
                both_ns.append(t2 - t0)

    prepare_ns = bench_prepare(loaded, live, classifier, work, rounds=max(1, args.rounds // 4))
    print(f"requests per round: {len(work)}   rounds: {args.rounds}   single thread, microseconds")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'step':<34}{'p50':>9}{'p99':>9}{'max':>10}")
    rows = [("decide (facts + decision)", decide_ns)]
    if classifier is not None:
        rows += [("classify", classify_ns), ("classify + decide", both_ns)]
    if prepare_ns:
        rows.append(("Pipeline.prepare (reference)", prepare_ns))
    for name, samples in rows:
        p = percentiles(samples)
        print(f"{name:<34}{p['p50']:>9.1f}{p['p99']:>9.1f}{p['max']:>10.1f}")
    p99 = percentiles(decide_ns)["p99"]
    ok = p99 <= TARGET_DECIDE_P99_US
    print(f"decision p99 {p99:.1f} us on top of the classifier: target <= {TARGET_DECIDE_P99_US:.0f} us: "
          f"{'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


def bench_prepare(loaded: LoadedPolicy, live: LiveState, classifier: Any,
                  work: list[tuple[dict[str, Any], dict[str, str]]], rounds: int) -> list[int]:
    """The whole pre-dispatch path of a request, as the HTTP handler runs it (no network)."""
    if classifier is None:
        return []
    from router.observability.metrics import RouterMetrics
    from router.observability.tracing import Tracer
    from router.pipeline import Pipeline

    class Fixed:
        current = loaded

    serving = Pipeline(policies=Fixed(), classifier=classifier, live=live, dispatcher=None,  # type: ignore[arg-type]
                        metrics=RouterMetrics(), tracer=Tracer(None), access_log=None)  # type: ignore[arg-type]
    samples: list[int] = []
    for round_index in range(rounds + 1):
        for body, headers in work:
            t0 = time.perf_counter_ns()
            try:
                serving.prepare(body, headers, dry_run=True)
            except Exception:  # an infeasible variation: still a full decision
                pass
            if round_index:
                samples.append(time.perf_counter_ns() - t0)
    return samples


if __name__ == "__main__":
    sys.exit(main())
