"""Gateway overhead: the same load sent straight to a fast upstream and through the gateway.

Starts, on 127.0.0.1 only: a demo vLLM-style upstream with no artificial delay (its own process),
the gateway (`model-router serve`, its own process, one worker) whose policy points at it, and an
aiohttp load generator here. For concurrency 1, 16 and 64, non-streaming and streaming, it prints
p50/p99 latency direct vs. through the gateway, the added latency, req/s, and the gateway's CPU
time per request (and per relayed stream chunk), read from /proc. Bounded: each cell runs for
a fixed number of requests.

    python benchmarks/bench_gateway.py [--requests 400] [--model kimi:instant|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([PY, "-m", "router.demo", "--kind", "vllm", "--port", "0", "--ttft-ms", "0",
                             "--tokens-per-s", "0", "--max-num-seqs", "4096"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    return proc, url


def start_gateway(upstream: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KIMI_API_BASE": upstream, "KIMI_METRICS_URL": "", "OPENAI_API_KEY": "",
           "ANTHROPIC_API_KEY": "", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0", "ROUTER_LOG_LEVEL": "warning",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = open(Path(tempfile.gettempdir()) / "bench-gateway.log", "wb")
    return subprocess.Popen([PY, "-m", "router", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(url: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


async def run_cell(url: str, body: bytes, *, concurrency: int, requests: int,
                   stream: bool) -> tuple[list[float], float, int]:
    """(latencies in s, wall s, chunks received) for `requests` requests at `concurrency`."""
    latencies: list[float] = []
    chunks = 0
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal remaining, chunks
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                    if stream:
                        async for line in resp.content:
                            if line.startswith(b"data: {"):
                                chunks += 1
                    else:
                        await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, chunks


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="requests per cell")
    parser.add_argument("--model", default="kimi:instant", help="kimi:instant (relay only) or auto (+ classify)")
    args = parser.parse_args()

    upstream_proc, upstream = start_upstream()
    port = free_port()
    gateway_proc = start_gateway(upstream, port)
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz")
        prompt = "Summarise the main causes of the 1929 stock market crash in three sentences."
        print(f"model={args.model}; {args.requests} requests per cell; upstream {upstream} (no delay)")
        print(f"{'mode':<7} {'c':>3} | {'direct p50':>10} {'p99':>7} {'req/s':>7} | {'gateway p50':>11} {'p99':>7} "
              f"{'req/s':>7} | {'added p50':>9} {'p99':>7} | {'gw CPU/req':>10} {'CPU/chunk':>9}")
        for stream in (False, True):
            for concurrency in (1, 16, 64):
                body = {"model": args.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64,
                        "stream": stream}
                direct_body = orjson.dumps({**body, "model": "moonshotai/Kimi-K2.5"})
                gw_body = orjson.dumps(body)
                # Warm both paths (connection pools, first-call costs) before measuring.
                await run_cell(f"{upstream}/chat/completions", direct_body, concurrency=concurrency,
                               requests=concurrency * 2, stream=stream)
                await run_cell(f"http://127.0.0.1:{port}/v1/chat/completions", gw_body, concurrency=concurrency,
                               requests=concurrency * 2, stream=stream)
                d_lat, d_wall, _ = await run_cell(f"{upstream}/chat/completions", direct_body,
                                                  concurrency=concurrency, requests=args.requests, stream=stream)
                cpu0 = cpu_seconds(gateway_proc.pid)
                g_lat, g_wall, chunks = await run_cell(f"http://127.0.0.1:{port}/v1/chat/completions", gw_body,
                                                       concurrency=concurrency, requests=args.requests,
                                                       stream=stream)
                cpu = cpu_seconds(gateway_proc.pid) - cpu0
                per_req_us = cpu / args.requests * 1e6
                per_chunk = f"{cpu / chunks * 1e6:7.1f}us" if stream and chunks else "-"
                print(f"{'stream' if stream else 'json':<7} {concurrency:>3} | "
                      f"{pct(d_lat, .5) * 1e3:>8.2f}ms {pct(d_lat, .99) * 1e3:>5.2f}ms "
                      f"{args.requests / d_wall:>7.0f} | "
                      f"{pct(g_lat, .5) * 1e3:>9.2f}ms {pct(g_lat, .99) * 1e3:>5.2f}ms "
                      f"{args.requests / g_wall:>7.0f} | "
                      f"{(pct(g_lat, .5) - pct(d_lat, .5)) * 1e3:>7.2f}ms "
                      f"{(pct(g_lat, .99) - pct(d_lat, .99)) * 1e3:>5.2f}ms | "
                      f"{per_req_us:>8.0f}us {per_chunk:>9}")
        print("gateway CPU is utime+stime of the gateway process over the measured cell (/proc); CPU/chunk is "
              "that total divided by relayed chunks (an upper bound: it includes the per-request work).")
    finally:
        gateway_proc.terminate()
        upstream_proc.terminate()
        gateway_proc.wait(timeout=10)
        upstream_proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
