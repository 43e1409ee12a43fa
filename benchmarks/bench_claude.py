"""Gateway CPU per Claude request: the native Anthropic client vs. litellm, in one run.

Starts, on 127.0.0.1 only: the demo Anthropic upstream with no artificial delay (its own process)
and the gateway (`model-router serve`, its own process, one worker) with the packaged policy's
`claude` backend (native Messages API client, router/dispatch/anthropic.py) plus a `claude-litellm`
backend (`provider: litellm`, the same upstream through litellm). For each route, JSON and
streamed, it sends a fixed number of requests (after a warm-up) and reads the gateway's CPU time
(utime+stime, /proc) over them: CPU per request, and the ratio litellm / native measured in the
same run (absolute figures drift on shared machines, ratios much less).

    python benchmarks/bench_claude.py [--requests 300] [--concurrency 1]

What it does not cover: the real Anthropic API's latency, TLS, large prompts or long answers (the
demo answers ~60 tokens); the classifier does not run (direct routes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import wait_ready

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CLK = os.sysconf("SC_CLK_TCK")
ROUTES = ("claude:default", "claude-litellm:default")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([PY, "-m", "router.demo", "--kind", "anthropic", "--port", "0", "--ttft-ms", "0",
                             "--tokens-per-s", "0", "--max-num-seqs", "4096"], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def policy_file() -> Path:
    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    policy["backends"]["claude-litellm"] = {
        **policy["backends"]["claude"], "provider": "litellm", "model": "anthropic/claude-sonnet-4-5"}
    path = Path(tempfile.gettempdir()) / "bench-claude-policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def start_gateway(upstream: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANTHROPIC_API_BASE": upstream, "ANTHROPIC_API_KEY": "demo-key", "KIMI_API_BASE": "",
           "OPENAI_API_KEY": "", "MOONSHOT_API_KEY": "", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0",
           "ROUTER_LOG_LEVEL": "warning", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = open(Path(tempfile.gettempdir()) / "bench-claude-gateway.log", "wb")
    return subprocess.Popen([PY, "-m", "router", "serve", "--config", str(policy_file()), "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


async def run(url: str, body: bytes, *, requests: int, concurrency: int) -> None:
    remaining = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    upstream_proc, upstream = start_upstream()
    port = free_port()
    gateway = start_gateway(upstream, port)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz")
        print(f"{args.requests} requests per cell at concurrency {args.concurrency}; demo Anthropic upstream, no delay")
        print(f"{'route':<24} {'mode':<7} {'gw CPU/req':>11}")
        results: dict[tuple[str, bool], float] = {}
        for stream in (False, True):
            for route in ROUTES:
                body = orjson.dumps({"model": route, "stream": stream, "max_tokens": 256, "messages": [
                    {"role": "user", "content": "Summarise the causes of the 1929 stock market crash."}]})
                await run(url, body, requests=max(20, args.requests // 10), concurrency=args.concurrency)  # warm
                cpu0 = cpu_seconds(gateway.pid)
                await run(url, body, requests=args.requests, concurrency=args.concurrency)
                per_req = (cpu_seconds(gateway.pid) - cpu0) / args.requests * 1e3
                results[(route, stream)] = per_req
                print(f"{route:<24} {'stream' if stream else 'json':<7} {per_req:>9.2f}ms")
        for stream in (False, True):
            ratio = results[(ROUTES[1], stream)] / max(results[(ROUTES[0], stream)], 1e-9)
            print(f"litellm / native, {'stream' if stream else 'json'}: {ratio:.1f}x")
        print("gateway CPU is utime+stime of the gateway process over the measured requests (/proc, 10 ms ticks).")
    finally:
        gateway.terminate()
        upstream_proc.terminate()
        gateway.wait(timeout=10)
        upstream_proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
