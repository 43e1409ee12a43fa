"""``tune`` and ``replay`` on synthetic decision logs at fleet scale: wall time and peak memory.

    .venv/bin/python benchmarks/bench_tuning.py [--rows 10000000] [--format parquet|jsonl] [--keep DIR]

Generates the log inside DuckDB (``router.tuning.synthetic``: decisions + feedback on a third, 10 %
exploration), then runs ``model-router tune`` (quality fit, thresholds, refits, candidate, report
with plots, replay) and ``model-router replay`` each in a fresh process, and reports wall time and
the child's peak RSS (``ru_maxrss``). Targets: under 5 minutes and 2 GiB each on a 2-core machine.
Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from router.settings import PACKAGED_POLICY
from router.tuning.synthetic import write_synthetic

TARGET_S = 300.0
TARGET_RSS_GIB = 2.0


def run(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS GiB, exit status) of a child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    output = proc.stdout.read().decode() if proc.stdout else ""
    print(output.rstrip()[-1500:])
    return wall, usage.ru_maxrss / 1024 / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    parser.add_argument("--keep", help="write the logs and outputs here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        base.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        logs = write_synthetic(base / "synthetic", args.rows, fmt=args.format)
        size = sum(p.stat().st_size for p in logs) / 1e6
        print(f"generated {args.rows:,} decisions (+ feedback on a third) as {args.format}: {size:,.0f} MB in "
              f"{time.perf_counter() - started:.1f} s")
        cli = [sys.executable, "-m", "router"]
        log_args = ["--log", *map(str, logs)]
        results = {}
        results["tune"] = run([*cli, "tune", *log_args, "--policy", str(PACKAGED_POLICY),
                               "--out", str(base / "candidate.yaml"), "--report", str(base / "report")])
        results["replay"] = run([*cli, "replay", *log_args, "--policy", str(base / "candidate.yaml"),
                                 "--baseline", str(PACKAGED_POLICY)])
    print(f"\n{args.rows:,} rows, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
    ok = True
    for name, (wall, rss, code) in results.items():
        met = code == 0 and wall <= TARGET_S and rss <= TARGET_RSS_GIB
        ok &= met
        print(f"  {name:<7} {wall:7.1f} s   peak RSS {rss:.2f} GiB   exit {code}   "
              f"{'met' if met else 'MISSED'} (target {TARGET_S:.0f} s, {TARGET_RSS_GIB:g} GiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
