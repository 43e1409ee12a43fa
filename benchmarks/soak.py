"""Soak: bounded load with injected upstream faults and a slow-connection flood, on loopback.

Starts the demo upstreams (in this process) and the gateway (`model-router serve`, its own
process, pointed at them), then runs three phases with a fixed number of concurrent clients,
half JSON and half streaming:

1. healthy   — the baseline;
2. faults    — Kimi answers 30% 503s and cuts 20% of streams mid-way, GPT hangs 10% of requests,
               Claude rate-limits 20%, and a flood of sockets trickles headers one byte at a time;
3. recovery  — faults cleared; recovery time = from the clear until 20 answers in a row are ok.

Every answer is sorted into: ok (a well-formed answer or a stream ending in [DONE]); clean error
(an error in OpenAI's shape with a non-500 status, or a stream ending in an error chunk + [DONE]);
wrong (a 200 that is malformed, a stream without [DONE]); 5xx (a 500, or any 5xx not in OpenAI's
shape); lost (no answer within the client's 30 s: connection error or timeout).

    python benchmarks/soak.py [--clients 16] [--seconds 8] [--flood 300]

Not in CI (it takes ~30 s and both cores); `make soak` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.demo import DemoUpstreams  # noqa: E402
from router.services import demo_env  # noqa: E402

PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.",
           "Explain why the sky is blue in two sentences.", "List three prime numbers."]
COLUMNS = ("sent", "ok", "clean error", "wrong", "5xx", "lost")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def classify(status: int, content_type: str, body: bytes, stream: bool) -> str:
    if status == 200 and stream:
        if not body.rstrip().endswith(b"data: [DONE]"):
            return "wrong"
        events = [block[6:] for block in body.split(b"\n\n") if block.startswith(b"data: ")]
        try:
            parsed = [orjson.loads(e) for e in events[:-1]]
        except orjson.JSONDecodeError:
            return "wrong"
        if not all(isinstance(e, dict) for e in parsed):
            return "wrong"
        return "clean error" if parsed and "error" in parsed[-1] else "ok"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "5xx" if status >= 500 else "wrong"
    if status == 200:
        return "ok" if isinstance(data, dict) and isinstance(data.get("choices"), list) else "wrong"
    shaped = isinstance(data, dict) and isinstance(data.get("error"), dict) and \
        {"message", "type", "param", "code"} <= set(data["error"])
    if status == 500 or not shaped:
        return "5xx" if status >= 500 else "wrong"
    return "clean error"


class Load:
    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.clients = clients
        self.counts: Counter[str] = Counter()
        self.outcomes: list[tuple[float, str]] = []  # (finished at, outcome)
        self._n = 0

    async def one(self, http: httpx.AsyncClient) -> None:
        self._n += 1
        stream = self._n % 2 == 0
        body = {"model": "auto", "stream": stream,
                "messages": [{"role": "user", "content": PROMPTS[self._n % len(PROMPTS)]}]}
        try:
            r = await http.post("/v1/chat/completions", json=body)
            outcome = classify(r.status_code, r.headers.get("content-type", ""), r.content, stream)
        except httpx.HTTPError:
            outcome = "lost"
        self.counts["sent"] += 1
        self.counts[outcome] += 1
        self.outcomes.append((time.monotonic(), outcome))

    async def run(self, seconds: float) -> Counter[str]:
        before = Counter(self.counts)
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
                while time.monotonic() < deadline:
                    await self.one(http)

        await asyncio.gather(*(worker() for _ in range(self.clients)))
        return self.counts - before


async def flood(port: int, sockets: int, seconds: float) -> int:
    """Slow connections: each sends a request line, then one header byte per second. Returns how
    many the gateway closed on its own before the end."""
    closed = 0

    async def slow() -> None:
        nonlocal closed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(1)
                writer.write(b"x")
                await writer.drain()
                if reader.at_eof():
                    closed += 1
                    return
        except OSError:
            closed += 1
        finally:
            writer.close()

    await asyncio.gather(*(slow() for _ in range(sockets)))
    return closed


async def phases(url: str, port: int, demo: DemoUpstreams,
                 args: argparse.Namespace) -> list[tuple[str, Counter[str], str]]:
    load = Load(url, args.clients)
    rows: list[tuple[str, Counter[str], str]] = [("healthy", await load.run(args.seconds), "")]

    demo.set_behavior("kimi", error_rate=0.3, error_status=503)
    demo.set_behavior("gpt", timeout_rate=0.1, hang_s=60)
    demo.set_behavior("claude", rate_limit_rate=0.2, retry_after_s=0.1)
    flooding = asyncio.create_task(flood(port, args.flood, args.seconds))
    faulted = await load.run(args.seconds)
    reaped = await flooding
    rows.append(("faults + flood", faulted, f"{reaped}/{args.flood} slow sockets reaped"))

    for name in demo.names:
        demo.reset(name)
    cleared = time.monotonic()
    recovered = await load.run(args.seconds)
    streak, recovery = 0, None
    for at, outcome in load.outcomes:
        if at < cleared:
            continue
        streak = streak + 1 if outcome == "ok" else 0
        if streak >= 20:
            recovery = at - cleared
            break
    note = f"recovery time: {recovery:.2f} s" if recovery is not None else "not recovered within the phase"
    rows.append(("recovery", recovered, note))
    return rows


def start_gateway(demo: DemoUpstreams) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, **demo_env(demo), "ROUTER_LOG_LEVEL": "error", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "ROUTER_HEADER_TIMEOUT_S": "5", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0"}
    gateway = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return gateway, port
        except httpx.HTTPError:
            time.sleep(0.1)
    gateway.kill()
    raise SystemExit("the gateway did not start")


def report(args: argparse.Namespace, rows: list[tuple[str, Counter[str], str]]) -> None:
    print(f"\nsoak: {args.clients} clients, {args.seconds:g} s per phase, half streaming, loopback\n")
    print(f"{'phase':<16}" + "".join(f"{c:>13}" for c in COLUMNS) + "   notes")
    for name, counts, note in rows:
        print(f"{name:<16}" + "".join(f"{counts.get(c, 0):>13}" for c in COLUMNS) + f"   {note}")
    print("\nok: well-formed answer; clean error: OpenAI-shaped error (not 500) or error chunk + [DONE];"
          "\nwrong: malformed 200 or a stream cut without [DONE]; 5xx: 500 or unshaped 5xx; lost: no answer.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--flood", type=int, default=300)
    args = parser.parse_args()
    with DemoUpstreams() as demo:
        gateway, port = start_gateway(demo)
        try:
            rows = asyncio.run(phases(f"http://127.0.0.1:{port}", port, demo, args))
        finally:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=40)
            except subprocess.TimeoutExpired:
                gateway.kill()
    report(args, rows)


if __name__ == "__main__":
    main()
