"""Single-thread latency of TaskClassifier.classify() per request, by input size.

    .venv/bin/python benchmarks/bench_classifier.py [--repeats N] [--artifact DIR]

Prints p50 / p99 / max in microseconds for short (< 500 chars), medium (~4k chars) and long (100k chars)
prompts against the targets of issue 3 (p99 <= 1 ms short and medium, <= 5 ms long), plus load time.
Wall-clock p99 on a busy shared machine includes time the OS gave to other processes; the cpu columns
(thread CPU time) show the classifier's own cost. Exit status 1 if a wall-clock p99 target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from router.classifier import TaskClassifier, artifact, report
from router.classifier.bench import TARGET_P99_US, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5000)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--update-card", action="store_true", help="record the numbers in the card's latency_us")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    classifier = TaskClassifier.load(args.artifact)
    load_ms = (time.perf_counter() - t0) * 1000
    results = run(classifier, repeats=args.repeats)
    print(f"load: {load_ms:.0f} ms   repeats per size: {args.repeats}   (single thread, microseconds)")
    print(f"{'size':<8}{'chars':>9}{'p50':>9}{'p99':>9}{'max':>10}{'cpu p50':>9}{'cpu p99':>9}{'p99 target':>12}  ok")
    ok = True
    for size, row in results.items():
        passed = row["p99"] <= TARGET_P99_US[size]
        ok &= passed
        print(f"{size:<8}{row['chars']:>9.0f}{row['p50']:>9.1f}{row['p99']:>9.1f}{row['max']:>10.1f}"
              f"{row['cpu_p50']:>9.1f}{row['cpu_p99']:>9.1f}{TARGET_P99_US[size]:>12}  {'yes' if passed else 'NO'}")
    if args.update_card:
        directory = args.artifact or artifact.default_dir()
        card = json.loads((directory / artifact.CARD_FILE).read_text(encoding="utf-8"))
        card["latency_us"] = {
            "method": f"benchmarks/bench_classifier.py, single thread, {args.repeats} requests per size",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_ms": round(load_ms),
            **results,
        }
        artifact.write_card(directory, card)
        print(f"wrote latency_us to {directory / artifact.CARD_FILE}")
        if args.artifact is None:
            report.update_readme(report.default_readme(), card)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
