"""Gateway overhead: the same load sent straight to a fast upstream and through the gateway.

Starts, on 127.0.0.1 only: a demo vLLM-style upstream with no artificial delay (its own process),
the gateway (`model-router serve`, its own process, one worker) whose policy points at it, and a
load generator: `wrk` when it is installed (C, so it leaves the two cores to the gateway and the
upstream), else an aiohttp client here. For concurrency 1, 16 and 64, non-streaming and streaming,
it prints p50/p99 latency direct vs. through the gateway, the added latency, req/s, and the
gateway's CPU time per request (and per relayed stream chunk), read from /proc. Bounded: each cell
runs a fixed number of requests (aiohttp) or seconds (wrk).

    python benchmarks/bench_gateway.py [--requests 400] [--seconds 5] [--model kimi:instant|auto]
                                       [--generator wrk|python] [--api chat|messages|responses|all]
                                       [--rounds 1]

``--api`` picks the front door(s): chat completions (default), Anthropic Messages
(``/v1/messages``), OpenAI Responses (``/v1/responses``), or all three in the same run (each cell
right after its own direct baseline); then each row also shows its added p50 and gateway CPU per request as a ratio
of chat's in the same cell (the doors' budget is 1.3x chat's added latency). A stream's "chunks"
are the door's SSE data frames (Anthropic and Responses events are finer-grained than chat chunks).
``--rounds N`` repeats every cell N times, the doors interleaved, and reports medians: on a shared
machine that is what makes the ratios mean something.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
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


async def wait_ready(url: str, within_s: float = 60, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(poll_s)
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
                            if line.startswith(b"data: {"):  # chat chunks, Anthropic / Responses events alike
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


class Cell:
    """One measured cell: latency percentiles (s), throughput and how many answers completed."""

    def __init__(self, p50: float, p99: float, rps: float, done: int) -> None:
        self.p50, self.p99, self.rps, self.done = p50, p99, rps, done


async def python_cell(url: str, body: bytes, *, concurrency: int, requests: int, stream: bool) -> Cell:
    latencies, wall, _ = await run_cell(url, body, concurrency=concurrency, requests=requests, stream=stream)
    return Cell(pct(latencies, .5), pct(latencies, .99), len(latencies) / wall, len(latencies))


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def wrk_cell(url: str, body: bytes, *, concurrency: int, seconds: float) -> Cell:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = [==[{body.decode()}]==]\n")  # a Lua long string: no escaping needed
    try:
        # --timeout: wrk's default (2 s) would drop slow answers from the percentiles on a loaded machine.
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "30s", "--latency",
                              "-s", script.name, url],
                             capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"errors under load:\n{out}")

    def latency(q: str) -> float:
        found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {q}th percentile in wrk's output:\n{out}")
        value, unit = found.groups()
        return float(value) * _UNITS[unit]

    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Cell(latency("50"), latency("99"), rps, done)


def median_row(runs: list[tuple[Cell, Cell, float]]) -> tuple[Cell, Cell, float, float, float]:
    """(direct, gateway, gateway CPU s, added p50, added p99) of the round with the median CPU per request;
    the added latencies are the medians over the rounds."""
    ordered = sorted(runs, key=lambda r: r[2] / max(1, r[1].done))
    direct, gateway, cpu = ordered[len(ordered) // 2]
    added = sorted(g.p50 - d.p50 for d, g, _ in runs)[len(runs) // 2]
    added99 = sorted(g.p99 - d.p99 for d, g, _ in runs)[len(runs) // 2]
    return direct, gateway, cpu, added, added99


API_PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}


def door_body(api: str, model: str, prompt: str, stream: bool) -> dict[str, object]:
    """The same request in each door's protocol (64 output tokens at most)."""
    if api == "messages":
        return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    if api == "responses":
        return {"model": model, "max_output_tokens": 64, "input": prompt, "stream": stream, "store": False}
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64, "stream": stream}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="requests per cell (python generator)")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per cell (wrk)")
    parser.add_argument("--model", default="kimi:instant", help="kimi:instant (relay only) or auto (+ classify)")
    parser.add_argument("--generator", choices=("wrk", "python"),
                        default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--api", choices=(*API_PATHS, "all"), default="chat", help="which front door(s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per cell; each figure is the median")
    args = parser.parse_args()
    apis = list(API_PATHS) if args.api == "all" else [args.api]

    upstream_proc, upstream = start_upstream()
    port = free_port()
    gateway_proc = start_gateway(upstream, port)
    direct_url = f"{upstream}/chat/completions"
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz")
        prompt = "Summarise the main causes of the 1929 stock market crash in three sentences."
        size = f"{args.seconds:g} s" if args.generator == "wrk" else f"{args.requests} requests"
        print(f"model={args.model}; load generator {args.generator}, {size} per cell; upstream {upstream} "
              "(no delay); gateway: one worker")
        print(f"{'api':<9} {'mode':<7} {'c':>3} | {'direct p50':>10} {'p99':>7} {'req/s':>7} | {'gateway p50':>11} "
              f"{'p99':>7} {'req/s':>7} | {'added p50':>9} {'p99':>7} | {'gw CPU/req':>10} {'CPU/chunk':>9}"
              + (" | x chat: added p50, CPU/req" if len(apis) > 1 else ""))
        for stream in (False, True):
            direct_body = orjson.dumps({**door_body("chat", "moonshotai/Kimi-K2.5", prompt, stream)})
            bodies = {api: orjson.dumps(door_body(api, args.model, prompt, stream)) for api in apis}
            urls = {api: f"http://127.0.0.1:{port}{API_PATHS[api]}" for api in apis}
            # Chunks per answer are the same for every request (same prompt, same max_tokens).
            chunks_per_answer = {api: (await run_cell(urls[api], bodies[api], concurrency=1, requests=1,
                                                      stream=stream))[2] for api in apis}
            for concurrency in (1, 16, 64):
                # Warm every path (connection pools, first-call costs) before measuring.
                for url, warm_body in ((direct_url, direct_body), *((urls[a], bodies[a]) for a in apis)):
                    await run_cell(url, warm_body, concurrency=concurrency, requests=concurrency * 2, stream=stream)
                rows: dict[str, list[tuple[Cell, Cell, float]]] = {api: [] for api in apis}
                for _ in range(args.rounds):  # rounds interleave the doors, so load drift hits them alike
                    for api in apis:  # each door's cell right after its own direct baseline
                        if args.generator == "wrk":
                            direct = wrk_cell(direct_url, direct_body, concurrency=concurrency, seconds=args.seconds)
                        else:
                            direct = await python_cell(direct_url, direct_body, concurrency=concurrency,
                                                       requests=args.requests, stream=stream)
                        cpu0 = cpu_seconds(gateway_proc.pid)
                        if args.generator == "wrk":
                            gateway = wrk_cell(urls[api], bodies[api], concurrency=concurrency, seconds=args.seconds)
                        else:
                            gateway = await python_cell(urls[api], bodies[api], concurrency=concurrency,
                                                        requests=args.requests, stream=stream)
                        rows[api].append((direct, gateway, cpu_seconds(gateway_proc.pid) - cpu0))
                chat_added = chat_cpu = None
                for api in apis:
                    direct, gateway, cpu, added, added99 = median_row(rows[api])
                    per_req_us = cpu / gateway.done * 1e6
                    chunks = gateway.done * chunks_per_answer[api]
                    per_chunk = f"{cpu / chunks * 1e6:7.1f}us" if stream and chunks else "-"
                    if api == "chat":
                        chat_added, chat_cpu = added, per_req_us
                    ratio = (f" | {added / chat_added:5.2f}x {per_req_us / chat_cpu:5.2f}x"
                             if chat_added and chat_cpu and len(apis) > 1 else "")
                    print(f"{api:<9} {'stream' if stream else 'json':<7} {concurrency:>3} | "
                          f"{direct.p50 * 1e3:>8.2f}ms {direct.p99 * 1e3:>5.2f}ms {direct.rps:>7.0f} | "
                          f"{gateway.p50 * 1e3:>9.2f}ms {gateway.p99 * 1e3:>5.2f}ms {gateway.rps:>7.0f} | "
                          f"{added * 1e3:>7.2f}ms {added99 * 1e3:>5.2f}ms | "
                          f"{per_req_us:>8.0f}us {per_chunk:>9}{ratio}")
        print("gateway CPU is utime+stime of the gateway process over the measured cell (/proc); CPU/chunk is "
              "that total divided by relayed chunks (an upper bound: it includes the per-request work).")
    finally:
        gateway_proc.terminate()
        upstream_proc.terminate()
        gateway_proc.wait(timeout=10)
        upstream_proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
