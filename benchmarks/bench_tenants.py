"""Per-request cost of tenants: key look-up, limits, rate limits and budget reservation + settlement.

    .venv/bin/python benchmarks/bench_tenants.py [--requests N] [--before REV]

1. In-process state: for each request, what the request path adds for a tenant with rpm, tpm, a
   daily and a monthly budget and per-request ceilings — ``identify`` (hash look-up), ``tenant_policy``,
   ``check_request``, ``request_limits``, ``Enforcer.admit`` (sliding windows, reservation, the
   ``x-ratelimit-*`` headers) and ``Admitted.finish`` (tenant metrics, settlement; the metrics are
   counted in dictionaries and reach Prometheus when the registry is read, once per scrape, which
   this loop does not time). Single event
   loop, no I/O; CPU time of the thread (what preemption by other processes does not inflate),
   three runs, and the floor (the timing loop with nothing in it) measured in the same run.
   Target: median p99 <= 50 µs (exit 1 above it). ``--before REV``: the same measurement of
   REV's tree (``git archive``, run in a subprocess), alternating with this tree's runs, and the
   ratios — the comparison a loaded machine cannot blur.
2. Redis on loopback (a private ``redis-server`` on a free port, when installed): the same
   admission/settlement at concurrency 1 and 32 — latency per admission, and Redis round trips
   per request counted at the client's connections (every command or pipeline written is one),
   cross-checked by the server's own ``EVALSHA`` count; the run's settlements (flushed on
   shutdown) are then read back from Redis: spend, reservations and requests must be exact.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from router.observability.metrics import RouterMetrics
from router.policy.loader import load_policy_file
from router.server import tune_collector
from router.settings import PACKAGED_POLICY
from router.tenants import manage
from router.tenants.enforce import Admitted, Enforcer
from router.tenants.gate import tenant_policy
from router.tenants.metrics import TenantMetrics
from router.tenants.state import MemoryState, SharedState
from router.tenants.store import TenantStore

TARGET_P99_US = 50.0
ENV = {"KIMI_API_BASE": "http://kimi.bench/v1", "OPENAI_API_KEY": "bench", "ANTHROPIC_API_KEY": "bench"}
TENANT = {"rpm": 10**9, "tpm": 10**12, "daily_budget_usd": 10**6, "monthly_budget_usd": 10**7,
          "max_cost_usd": {"default": 0.05, "max": 0.5}, "latency_budget_ms": {"max": 60000},
          "swarm": {"max_agents": 10}}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup(directory: Path) -> tuple[TenantStore, str]:
    path = directory / "tenants.yaml"
    path.write_text(yaml.safe_dump({"tenants": {"bench": TENANT, **{f"t{i}": {"rpm": 60} for i in range(200)}}}))
    key = manage.create_key(path, "bench").key
    for i in range(200):  # a directory of a few hundred keys
        manage.create_key(path, f"t{i}")
    return TenantStore(path), key


async def per_request(store: TenantStore, key: str, state: SharedState,
                      requests: int) -> tuple[list[float], list[float], list[float], list[bool]]:
    """Wall and CPU µs per request, the CPU µs of the empty timing loop (the floor), and whether
    the thread was switched out during the request (its context-switch count moved: read around the
    timed part, not inside it)."""
    loaded = load_policy_file(PACKAGED_POLICY, env=ENV)
    metrics = TenantMetrics(RouterMetrics(), store.current.names)
    enforcer = Enforcer(state, metrics)
    header = f"Bearer {key}"
    samples: list[float] = []
    cpu: list[float] = []
    floor: list[float] = []
    preempted: list[bool] = []
    exempt: frozenset[str] = frozenset()
    gc.collect()
    gc.freeze()  # as the gateway does after start-up
    tune_collector()  # and the serving process's collector threshold (router.server)
    for _ in range(requests):
        switches = _switches()
        c0 = time.thread_time()
        floor.append((time.thread_time() - c0) * 1e6)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        limits = store.identify(header)
        assert limits is not None
        tenant_policy(limits, loaded)
        limits.check_request("auto", None, None)
        limits.request_limits(1.0, 180000, None, 30000)
        reservation = await enforcer.admit(limits, reserve_usd=0.05, need_usd=0.001, tokens=600, ttl_ms=600_000)
        admitted = Admitted(reservation, metrics, exempt)
        assert admitted.headers  # sent on the answer
        admitted.finish("gpt:default", "ok", 0.0012, 640)
        samples.append((time.perf_counter() - t0) * 1e6)
        cpu.append((time.thread_time() - c0) * 1e6)
        preempted.append(_switches() != switches)
    return samples, cpu, floor, preempted


def _switches() -> int:
    """Context switches of this thread so far (voluntary + involuntary)."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_nvcsw + usage.ru_nivcsw


async def redis_run(url: str, store: TenantStore, key: str, requests: int, concurrency: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    from router.tenants.redis_state import RedisState
    from tests.support.redis_wire import count_round_trips

    admin = aioredis.Redis.from_url(url)
    await admin.flushdb()
    state = RedisState(url)
    trips = count_round_trips(state._client)
    limits = store.identify(f"Bearer {key}")
    assert limits is not None
    enforcer = Enforcer(state, TenantMetrics(RouterMetrics(), store.current.names))
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            t0 = time.perf_counter()
            reservation = await enforcer.admit(limits, reserve_usd=0.05, need_usd=0.001, tokens=600,
                                               ttl_ms=600_000)
            latencies.append((time.perf_counter() - t0) * 1e6)
            await asyncio.sleep(0)  # the request runs
            reservation.settle(0.0012, 640)

    warm = 50
    await asyncio.gather(*(one() for _ in range(warm)))  # warm-up: scripts loaded, connections open
    await state.flush()
    latencies.clear()
    evalsha_before = (await admin.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
    trips_before = trips.count
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    await state.aclose()  # the flush on shutdown: the last settlements, counted too
    wall = time.perf_counter() - started
    sent = trips.count - trips_before
    evalsha = (await admin.info("commandstats"))["cmdstat_evalsha"]["calls"] - evalsha_before
    check = RedisState(url)
    reading = (await check.peek(limits.tenant, limits.meters, int(time.time() * 1000)))[0]
    await check.aclose()
    await admin.aclose()
    total = warm + requests
    exact = (abs(reading.monthly_spent - total * 0.0012) < 1e-9 * total and abs(reading.monthly_reserved) < 1e-9
             and reading.requests == total)
    return {"p50": statistics.median(latencies), "p99": pct(latencies, 0.99), "trips": sent / requests,
            "evalsha": evalsha / requests, "rps": requests / wall, "exact": float(exact)}


Row = tuple[float, float, float, float, float, float, float]
COLUMNS = (("wall p50", 9), ("wall p99", 9), ("CPU p50", 8), ("CPU p99", 8), ("floor p99", 10),
           ("p99 unswitched", 15), ("switched %", 11))


def one_run(store: TenantStore, key: str, requests: int) -> Row:
    """wall p50, wall p99, CPU p50, CPU p99, floor p99 (µs) of one in-process run; the CPU p99 of
    the requests during which the thread was not switched out, and the share (%) that were."""
    gc.collect()
    samples, cpu, floor, preempted = asyncio.run(per_request(store, key, MemoryState(), requests))
    cut = len(cpu) // 10  # drop the warm-up tenth
    samples, cpu, floor, preempted = samples[cut:], cpu[cut:], floor[cut:], preempted[cut:]
    unswitched = [c for c, p in zip(cpu, preempted, strict=True) if not p]
    return (statistics.median(samples), pct(samples, 0.99), statistics.median(cpu), pct(cpu, 0.99),
            pct(floor, 0.99), pct(unswitched, 0.99), 100 * sum(preempted) / len(preempted))


def before_run(rev: str, requests: int, directory: Path) -> Row:
    """One run of this harness over REV's tree (extracted once into ``directory``)."""
    tree = directory / "before"
    if not tree.exists():
        tree.mkdir()
        root = Path(__file__).resolve().parent.parent
        archive = subprocess.run(["git", "-C", str(root), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        shutil.copy(Path(__file__), tree / "benchmarks" / "bench_tenants_now.py")
    out = subprocess.run([sys.executable, "benchmarks/bench_tenants_now.py", "--requests", str(requests),
                          "--one-run"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
                         capture_output=True, text=True).stdout
    values = json.loads(out.strip().splitlines()[-1])
    return (values[0], values[1], values[2], values[3], values[4], values[5], values[6])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", metavar="REV", help="also measure REV's tree, alternating runs")
    parser.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)  # --before's subprocess
    args = parser.parse_args()
    if args.one_run:
        with tempfile.TemporaryDirectory() as tmp:
            store, key = setup(Path(tmp))
            print(json.dumps(one_run(store, key, args.requests)))
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, {args.requests} requests x {args.runs} runs")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        store, key = setup(Path(tmp))
        print(f"directory: {len(store.current.tenants)} tenants, {len(store.current.index)} keys")
        print("\nin-process state, per request (identify + limits + admit + headers + finish/settle), µs:")
        print(f"{'tree':>10} {'run':>4} " + " ".join(f"{name:>{width}}" for name, width in COLUMNS))
        rows: dict[str, list[Row]] = {"this": [], "before": []}
        for run in range(args.runs):
            if args.before:
                rows["before"].append(before_run(args.before, args.requests, Path(tmp)))
                print(f"{args.before[:10]:>10} {run + 1:>4} " + " ".join(
                    f"{v:>{w}.1f}" for v, (_, w) in zip(rows["before"][-1], COLUMNS, strict=True)))
            rows["this"].append(one_run(store, key, args.requests))
            print(f"{'this':>10} {run + 1:>4} " + " ".join(
                f"{v:>{w}.1f}" for v, (_, w) in zip(rows["this"][-1], COLUMNS, strict=True)))
        p99 = statistics.median(r[3] for r in rows["this"])
        ok = p99 <= TARGET_P99_US
        print(f"CPU p99, median of {args.runs} runs: {p99:.1f} µs (target <= {TARGET_P99_US:g} µs: "
              f"{'met' if ok else 'MISSED'}); wall includes preemption by other processes on a shared machine")
        unswitched = statistics.median(r[5] for r in rows["this"])
        print(f"CPU p99 of the requests not switched out, median of {args.runs} runs: {unswitched:.1f} µs "
              "(a switch costs the request the kernel's work and cold caches; the target is judged on all)")
        if args.before:
            p50, p50_before = (statistics.median(r[2] for r in rows[t]) for t in ("this", "before"))
            p99_before = statistics.median(r[3] for r in rows["before"])
            print(f"this / {args.before}: CPU p50 {p50 / p50_before:.2f}x, CPU p99 {p99 / p99_before:.2f}x "
                  "(medians of the alternating runs)")
        redis_bin = shutil.which("redis-server")
        if redis_bin is None:
            print("\nredis-server not installed: Redis rows skipped (apt-get install redis-server)")
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.support.redis_server import RedisServer

            with RedisServer(Path(tmp) / "redis", persistent=False) as server:
                print("\nRedis on loopback (one EVALSHA per request: the admission carries the queued settlements):")
                print(f"{'concurrency':>11} {'admit p50 µs':>13} {'admit p99 µs':>13} {'round trips/req':>16} "
                      f"{'EVALSHA/req':>12} {'req/s':>8} {'accounting':>11}")
                for concurrency in (1, 32):
                    n = min(args.requests, 5000)
                    row = asyncio.run(redis_run(server.url, store, key, n, concurrency))
                    ok = ok and bool(row["exact"])
                    print(f"{concurrency:>11} {row['p50']:>13.0f} {row['p99']:>13.0f} {row['trips']:>16.3f} "
                          f"{row['evalsha']:>12.3f} {row['rps']:>8.0f} {'exact' if row['exact'] else 'WRONG':>11}")
                print("round trips: counted at the client's connections (each command or pipeline written),")
                print("including the flush on shutdown; EVALSHA/req is the server's own count (INFO commandstats).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
