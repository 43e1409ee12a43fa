"""Side by side in one run: the raw relay floor (`floor_relay.py`) and the gateway, both relaying to
the same instant upstream (`canned_upstream.py`), reported as ratios — absolute figures drift from
run to run on a shared machine, ratios measured in the same run do not.

Placement on the 2-core machine: the server under test (floor, then gateway) is pinned to core 1;
the upstream and the load generators share core 0. Both servers see the same load, one at a time.

    python benchmarks/bench_floor.py [--seconds 5] [--requests 400] [--model kimi:instant] [--runs 3]

Measures, per server: start → ready, idle RSS, added p50 at c=1 (JSON: whole answer; stream: first
byte of the first SSE frame), max req/s at c=64 (wrk, JSON and stream), CPU per JSON and per stream
request (the server process's utime+stime over the c=64 cell, all its threads, divided by the
requests wrk completed: CPU time, not wall time, so a noisy neighbour on the core inflates it far
less than it does latency), and p99/p50 at c=64 (stream: the target; JSON and the floor's: for
comparison). The stream cell is each server's second c=64 cell: 64 new connections at once on a
warm server, the case where uvloop's one-accept-per-turn listener showed (README.md, "Streams").
With ``--runs N`` the whole side-by-side is repeated and each ratio is the median, with its range.
Needs `wrk` (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import Cell, cpu_seconds, free_port, pct, wait_ready

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
PY = sys.executable
SERVER_CORE, LOAD_CORE = "1", "0"


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1 \
        else argv


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spawn(core: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(Path(tempfile.gettempdir()) / f"bench-floor-{Path(argv[-2]).stem}.log", "wb")
    return subprocess.Popen(pinned(core, argv), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


async def sequential(url: str, body: bytes, n: int, *, stream: bool) -> list[float]:
    """Latency of n requests one after another: whole answer (JSON) or first SSE frame (stream)."""
    out: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            started = time.perf_counter()
            async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                if stream:
                    first = None
                    async for line in resp.content:
                        if first is None and line.startswith(b"data: "):
                            first = time.perf_counter() - started
                    out.append(first if first is not None else float("nan"))
                else:
                    await resp.read()
                    out.append(time.perf_counter() - started)
                if resp.status != 200:
                    raise RuntimeError(f"{url}: HTTP {resp.status}")
    return out


@dataclass
class Result:
    ready_s: float = 0.0
    idle_rss: float = 0.0
    json_p50: float = 0.0
    json_rps: float = 0.0
    json_cpu_ms: float = 0.0
    ttfb_p50: float = 0.0
    stream_rps: float = 0.0
    stream_cpu_ms: float = 0.0
    stream_p50_c64: float = 0.0
    stream_p99_c64: float = 0.0
    json_p50_c64: float = 0.0
    json_p99_c64: float = 0.0


async def measure(argv: list[str], env: dict[str, str], url: str, ready: str, bodies: tuple[bytes, bytes],
                  args: argparse.Namespace) -> Result:
    res = Result()
    started = time.perf_counter()
    proc = spawn(SERVER_CORE, argv, env)
    try:
        await wait_ready(ready, poll_s=0.02)  # start -> ready is measured: poll finely
        res.ready_s = time.perf_counter() - started
        await asyncio.sleep(1.0)
        res.idle_rss = rss_mib(proc.pid)
        json_body, stream_body = bodies
        await sequential(url, json_body, 50, stream=False)  # warm-up
        res.json_p50 = pct(await sequential(url, json_body, args.requests, stream=False), .5)
        await sequential(url, stream_body, 50, stream=True)
        res.ttfb_p50 = pct(await sequential(url, stream_body, args.requests, stream=True), .5)
        cpu0 = cpu_seconds(proc.pid)
        cell = wrk_cell(url, json_body, concurrency=64, seconds=args.seconds)
        res.json_cpu_ms = (cpu_seconds(proc.pid) - cpu0) / max(1, cell.done) * 1e3
        res.json_rps, res.json_p50_c64, res.json_p99_c64 = cell.rps, cell.p50, cell.p99
        cpu0 = cpu_seconds(proc.pid)
        cell = wrk_cell(url, stream_body, concurrency=64, seconds=args.seconds)
        res.stream_cpu_ms = (cpu_seconds(proc.pid) - cpu0) / max(1, cell.done) * 1e3
        res.stream_rps, res.stream_p50_c64, res.stream_p99_c64 = cell.rps, cell.p50, cell.p99
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return res


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk_cell(url: str, body: bytes, *, concurrency: int, seconds: float) -> Cell:
    """One wrk run (pinned to the load core); a run with errors or no latency table is an error."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = [==[{body.decode()}]==]\n")
    try:
        # --timeout 10s: wrk's default (2 s) drops slower answers from the latency table — on a busy
        # machine that hides the very tail p99 is about (and aborts the run as a socket error).
        out = subprocess.run(pinned(LOAD_CORE, ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency",
                                                "--timeout", "10s", "-s", script.name, url]),
                             capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    found = {q: re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE) for q in ("50", "99")}
    if "Non-2xx" in out or "Socket errors" in out or not all(found.values()):
        raise RuntimeError(f"wrk against {url} failed or errored:\n{out}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50, p99 = (float(m.group(1)) * _UNITS[m.group(2)] for m in (found["50"], found["99"]))  # type: ignore[union-attr]
    if p50 <= 0:
        raise RuntimeError(f"wrk against {url}: no latency measured:\n{out}")
    return Cell(p50, p99, rps, done)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5, help="seconds per wrk cell")
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per c=1 cell")
    parser.add_argument("--model", default="kimi:instant")
    parser.add_argument("--runs", type=int, default=3, help="repeat the side-by-side; ratios are the median")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_floor needs wrk: apt-get install -y wrk")
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # this client shares the load core

    runs = [await one_run(args) for _ in range(args.runs)]
    print(f"model={args.model}; wrk {args.seconds:g} s per c=64 cell, {args.requests} sequential requests per "
          "c=1 cell; server under test on core 1, upstream + load on core 0; CPU = utime+stime of the server "
          "process over the c=64 cell / requests completed")
    print(f"{'':<18} {'+p50 JSON':>8} {'JSON r/s':>8} {'CPU/JSON':>8} {'+TTFB str':>9} {'CPU/str':>8} "
          f"{'str r/s':>8} {'p99/p50':>8} {'RSS MiB':>7} {'ready':>6}")
    print(f"{'(units)':<18} {'ms c=1':>8} {'c=64':>8} {'ms':>8} {'ms c=1':>9} {'ms':>8} {'c=64':>8} {'c=64':>8} "
          f"{'idle':>7} {'s':>6}")
    for i, run in enumerate(runs, 1):
        for name, r in (("floor", run.floor), ("model-router", run.gateway)):
            print(f"{name + (f' #{i}' if len(runs) > 1 else ''):<18} {(r.json_p50 - run.direct_json) * 1e3:>8.2f} "
                  f"{r.json_rps:>8.0f} {r.json_cpu_ms:>8.2f} {(r.ttfb_p50 - run.direct_ttfb) * 1e3:>9.2f} "
                  f"{r.stream_cpu_ms:>8.2f} {r.stream_rps:>8.0f} {r.stream_p99_c64 / r.stream_p50_c64:>8.1f} "
                  f"{r.idle_rss:>7.0f} {r.ready_s:>6.2f}")

    def ratio(label: str, values: list[float], op: str, target: float | None) -> None:
        value = statistics.median(values)
        spread = f"  [{min(values):.2f}–{max(values):.2f}]" if len(values) > 1 else ""
        verdict = "" if target is None else \
            f"  (target {op} {target:g})  {'ok' if (value >= target if op == '>=' else value <= target) else 'MISSED'}"
        print(f"  {label:<42} {value:6.2f}{spread}{verdict}")

    print(f"ratios, gateway / floor{f' (median of {len(runs)} runs [min–max])' if len(runs) > 1 else ''}:")
    ratio("JSON max req/s", [r.gateway.json_rps / r.floor.json_rps for r in runs], ">=", 0.5)
    ratio("JSON added p50 at c=1", [(r.gateway.json_p50 - r.direct_json) / max(1e-6, r.floor.json_p50 - r.direct_json)
                                    for r in runs], "<=", 2.5)
    ratio("CPU per JSON request", [r.gateway.json_cpu_ms / r.floor.json_cpu_ms for r in runs], "", None)
    ratio("stream added TTFB p50 at c=1", [(r.gateway.ttfb_p50 - r.direct_ttfb)
                                           / max(1e-6, r.floor.ttfb_p50 - r.direct_ttfb) for r in runs], "<=", 2.0)
    ratio("CPU per stream request", [r.gateway.stream_cpu_ms / r.floor.stream_cpu_ms for r in runs], "<=", 1.5)
    ratio("stream max req/s", [r.gateway.stream_rps / r.floor.stream_rps for r in runs], ">=", 0.5)
    ratio("gateway stream p99/p50 at c=64", [r.gateway.stream_p99_c64 / r.gateway.stream_p50_c64 for r in runs],
          "<=", 3.0)
    ratio("floor stream p99/p50 at c=64", [r.floor.stream_p99_c64 / r.floor.stream_p50_c64 for r in runs], "", None)
    ratio("gateway JSON p99/p50 at c=64", [r.gateway.json_p99_c64 / r.gateway.json_p50_c64 for r in runs], "", None)
    ratio("floor JSON p99/p50 at c=64", [r.floor.json_p99_c64 / r.floor.json_p50_c64 for r in runs], "", None)
    ratio("gateway CPU/stream - CPU/JSON, ms (the frames)",
          [r.gateway.stream_cpu_ms - r.gateway.json_cpu_ms for r in runs], "", None)
    gw = runs[len(runs) // 2].gateway
    print(f"  gateway start → ready {statistics.median(r.gateway.ready_s for r in runs):.2f} s (target <= 3), "
          f"idle RSS {gw.idle_rss:.0f} MiB (target <= 150)")


@dataclass
class Run:
    direct_json: float
    direct_ttfb: float
    floor: Result
    gateway: Result


async def one_run(args: argparse.Namespace) -> Run:
    """One side-by-side: the upstream alone (the direct latency), then the floor, then the gateway."""
    up_port, floor_port, gw_port = free_port(), free_port(), free_port()
    upstream = spawn(LOAD_CORE, [PY, str(HERE / "canned_upstream.py"), str(up_port)], dict(os.environ))
    up_base = f"http://127.0.0.1:{up_port}/v1"
    messages = [{"role": "user", "content": "Summarise the main causes of the 1929 stock market crash."}]
    try:
        await wait_ready(f"{up_base}/models")
        direct = f"{up_base}/chat/completions"
        raw = {"model": "moonshotai/Kimi-K2.5", "messages": messages, "max_tokens": 64}
        direct_bodies = (orjson.dumps(raw), orjson.dumps({**raw, "stream": True}))
        direct_json = pct(await sequential(direct, direct_bodies[0], args.requests, stream=False), .5)
        direct_ttfb = pct(await sequential(direct, direct_bodies[1], args.requests, stream=True), .5)

        floor = await measure([PY, str(HERE / "floor_relay.py"), up_base, str(floor_port)], dict(os.environ),
                              f"http://127.0.0.1:{floor_port}/v1/chat/completions",
                              f"http://127.0.0.1:{floor_port}/readyz", direct_bodies, args)
        env = {**os.environ, "KIMI_API_BASE": up_base, "KIMI_METRICS_URL": "", "OPENAI_API_KEY": "",
               "ANTHROPIC_API_KEY": "", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0", "ROUTER_LOG_LEVEL": "warning",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        gw = {**raw, "model": args.model}
        gateway = await measure([PY, "-m", "router", "serve", "--host", "127.0.0.1", "--port", str(gw_port)], env,
                                f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                                f"http://127.0.0.1:{gw_port}/readyz",
                                (orjson.dumps(gw), orjson.dumps({**gw, "stream": True})), args)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    return Run(direct_json, direct_ttfb, floor, gateway)


if __name__ == "__main__":
    asyncio.run(main())
