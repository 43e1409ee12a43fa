"""The relay's HTTP client alone: CPU per request of aiohttp's client (what the relay used) and of
``router/dispatch/http1.Pool`` (what it uses), the same loop (uvloop), the same instant upstream.

    python benchmarks/bench_http1.py [--requests 20000] [--concurrency 16] [--rounds 3]

The upstream (``canned_upstream.py``, JSON and an SSE stream of 16 frames each written on its own)
runs in its own process on core 0, this process on core 1. Each cell sends ``--requests`` requests
from ``--concurrency`` tasks and reads every answer whole (JSON) or splits it into ``data:``
payloads (stream: aiohttp's ``readany()`` into ``DataLines`` as the relay did, http1 pushing into it);
the figure is this process's CPU (utime + stime) per request. Clients alternate cell by cell,
``--rounds`` times; medians. What it does not cover: everything else the gateway does per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from router.dispatch.http1 import Pool
from router.sse import DataLines

HERE = Path(__file__).resolve().parent
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer k"}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def aiohttp_cell(url: str, n: int, c: int, stream: bool) -> float:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024), trust_env=False)
    body = BODY[:-1] + (b', "stream": true}' if stream else b"}")

    async def one() -> None:
        async with session.post(url, data=body, headers=HEADERS,
                                timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=30) if stream
                                else aiohttp.ClientTimeout(total=30, connect=5)) as resp:
            if not stream:
                await resp.read()
                return
            lines = DataLines()
            while data := await resp.content.readany():
                lines.feed(data)
                while lines.ready():
                    await lines.next()
            lines.feed_eof()
            while await lines.next() is not None:
                pass

    return await _run(one, n, c, session.close)


async def http1_cell(url: str, n: int, c: int, stream: bool) -> float:
    pool = Pool()
    body = BODY[:-1] + (b', "stream": true}' if stream else b"}")

    async def one() -> None:
        resp = await pool.request("POST", url, HEADERS, body, connect_s=5,
                                  read_s=30 if stream else None, total_s=None if stream else 30)
        try:
            if not stream:
                await resp.read()
                return
            lines = DataLines()
            resp.stream_into(lines)
            while (payload := await lines.next()) is not None:
                if payload == b"[DONE]":  # as the relay does
                    resp.release_at_end()
                    break
        finally:
            resp.close()

    return await _run(one, n, c, pool.aclose)


async def _run(one, n: int, c: int, close) -> float:  # type: ignore[no-untyped-def]
    for _ in range(200):  # warm: connections, code paths
        await one()
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    before = cpu()
    await asyncio.gather(*(worker() for _ in range(c)))
    used = cpu() - before
    await close()
    return used / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = 18941
    taskset = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    upstream = subprocess.Popen([*taskset, sys.executable, str(HERE / "canned_upstream.py"), str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if taskset:
        os.sched_setaffinity(0, {1})
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results: dict[tuple[str, bool], list[float]] = {}
        for n in range(args.rounds):
            for stream in (False, True):
                for name, cell in (("aiohttp", aiohttp_cell), ("http1", http1_cell)):
                    us = uvloop.run(cell(url, args.requests, args.concurrency, stream))
                    results.setdefault((name, stream), []).append(us)
                    load = Path("/proc/loadavg").read_text().split()[0]
                    print(f"round {n + 1} {'stream' if stream else 'json':6} {name:8} {us:6.1f} µs CPU/request"
                          f"  (load {load})", flush=True)
        for stream in (False, True):
            old = statistics.median(results[("aiohttp", stream)])
            new = statistics.median(results[("http1", stream)])
            print(f"{'stream' if stream else 'json':6} aiohttp {old:6.1f} µs  http1 {new:6.1f} µs  "
                  f"http1/aiohttp {new / old:.2f}  (client process CPU per request, medians of {args.rounds})")
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()
