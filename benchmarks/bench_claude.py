"""Gateway CPU per Claude request: the native Anthropic client vs. litellm, in one run.

Starts, on 127.0.0.1 only: the demo Anthropic upstream with no artificial delay (its own process)
and the gateway (`model-router serve`, its own process, one worker) with the packaged policy's
`claude` backend (native Messages API client, router/dispatch/anthropic.py) plus a `claude-litellm`
backend (`provider: litellm`, the same upstream through litellm). For each route, JSON and
streamed, it sends a fixed number of requests (after a warm-up) and reads the gateway's CPU time
(utime+stime, /proc) over them: CPU per request, and the ratio litellm / native measured in the
same run (absolute figures drift on shared machines, ratios much less).

    python benchmarks/bench_claude.py [--requests 300] [--concurrency 1] [--before REV] [--runs 3]

``--before REV`` adds the ``/v1/messages`` → Claude cells: a coding agent's turn (system prompt,
tools, six tool-use turns) sent through the Messages door, JSON and streamed, to this tree's
gateway (the client's body passes to Claude as it came) and to a second gateway run from REV's
tree (``git archive``; before the passthrough that was Anthropic → chat → Anthropic and back), the
two cells alternating, ``--runs`` times; it prints the median CPU per request and now / before.

What it does not cover: the real Anthropic API's latency, TLS, large prompts or long answers (the
demo answers ~60 tokens); the classifier does not run (direct routes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
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


def start_gateway(upstream: str, port: int, root: Path = ROOT) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANTHROPIC_API_BASE": upstream, "ANTHROPIC_API_KEY": "demo-key", "KIMI_API_BASE": "",
           "OPENAI_API_KEY": "", "MOONSHOT_API_KEY": "", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0",
           "ROUTER_LOG_LEVEL": "warning", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = open(Path(tempfile.gettempdir()) / f"bench-claude-gateway-{port}.log", "wb")
    # `python -m` puts the working directory first on sys.path: `root`'s router package is the one run.
    return subprocess.Popen([PY, "-m", "router", "serve", "--config", str(policy_file()), "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)


def tree_at(rev: str) -> Path:
    """REV's files in a temporary directory (``git archive``: the repository itself is not touched)."""
    out = Path(tempfile.mkdtemp(prefix="bench-claude-before-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


TOOLS = [{"name": f"tool_{i}", "description": "Reads or edits one file of the repository.",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
         for i in range(4)]


def messages_body(*, stream: bool, turns: int = 6) -> bytes:
    """A coding agent's turn in Anthropic's shape, with the cache_control such agents set."""
    messages: list[dict[str, object]] = [{"role": "user", "content": "Fix the failing test in tests/test_x.py."}]
    for i in range(turns):
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": "Let me look at the file."},
            {"type": "tool_use", "id": f"toolu_{i}", "name": "tool_1", "input": {"path": f"src/m{i}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "def f():\n    return 1\n" * 20}]})
    messages.append({"role": "user", "content": "Now run the tests and tell me what failed."})
    return orjson.dumps({"model": "claude:default", "max_tokens": 1024, "stream": stream, "tools": TOOLS,
                         "system": [{"type": "text", "text": "You are a careful coding agent. " * 40,
                                     "cache_control": {"type": "ephemeral"}}], "messages": messages})


async def cell(gateway: subprocess.Popen[bytes], url: str, body: bytes, *, requests: int, concurrency: int) -> float:
    """Gateway CPU ms per request over ``requests`` (after a warm-up)."""
    await run(url, body, requests=max(20, requests // 10), concurrency=concurrency)
    cpu0 = cpu_seconds(gateway.pid)
    await run(url, body, requests=requests, concurrency=concurrency)
    return (cpu_seconds(gateway.pid) - cpu0) / requests * 1e3


async def messages_cells(upstream: str, rev: str, *, requests: int, concurrency: int, runs: int) -> None:
    """/v1/messages → Claude, this tree vs. REV's, alternating; medians of ``runs``."""
    gateways = {"now": (ROOT, free_port()), "before": (tree_at(rev), free_port())}
    procs = {name: start_gateway(upstream, port, root) for name, (root, port) in gateways.items()}
    try:
        for _, port in gateways.values():
            await wait_ready(f"http://127.0.0.1:{port}/readyz")
        print(f"\n/v1/messages -> claude:default, a coding agent's turn; now vs. {rev}; median of {runs} runs")
        for stream in (False, True):
            body = messages_body(stream=stream)
            samples: dict[str, list[float]] = {"before": [], "now": []}
            for _ in range(runs):
                for name in ("before", "now"):
                    url = f"http://127.0.0.1:{gateways[name][1]}/v1/messages"
                    samples[name].append(await cell(procs[name], url, body, requests=requests,
                                                    concurrency=concurrency))
            before, now = (statistics.median(samples[n]) for n in ("before", "now"))
            runs_text = " ".join(f"{b:.2f}/{n:.2f}" for b, n in zip(samples["before"], samples["now"], strict=True))
            print(f"{'stream' if stream else 'json':<7} before {before:6.2f} ms  now {now:6.2f} ms  "
                  f"now/before {now / before:.2f}  (runs before/now: {runs_text})")
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(gateways["before"][0], ignore_errors=True)


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
    parser.add_argument("--before", help="a git revision: add the /v1/messages cells, this tree vs. that one")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of the /v1/messages cells")
    parser.add_argument("--messages-only", action="store_true", help="skip the chat cells")
    args = parser.parse_args()
    upstream_proc, upstream = start_upstream()
    port = free_port()
    gateway = start_gateway(upstream, port)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz")
        if args.messages_only:
            gateway.terminate()
        else:
            await chat_cells(gateway, url, args.requests, args.concurrency)
        if args.before:
            await messages_cells(upstream, args.before, requests=args.requests, concurrency=args.concurrency,
                                 runs=args.runs)
        print("gateway CPU is utime+stime of the gateway process over the measured requests (/proc, 10 ms ticks).")
    finally:
        gateway.terminate()
        upstream_proc.terminate()
        gateway.wait(timeout=10)
        upstream_proc.wait(timeout=10)


async def chat_cells(gateway: subprocess.Popen[bytes], url: str, requests: int, concurrency: int) -> None:
    """/v1/chat/completions → Claude: the native client vs. litellm."""
    print(f"{requests} requests per cell at concurrency {concurrency}; demo Anthropic upstream, no delay")
    print(f"{'route':<24} {'mode':<7} {'gw CPU/req':>11}")
    results: dict[tuple[str, bool], float] = {}
    for stream in (False, True):
        for route in ROUTES:
            body = orjson.dumps({"model": route, "stream": stream, "max_tokens": 256, "messages": [
                {"role": "user", "content": "Summarise the causes of the 1929 stock market crash."}]})
            per_req = await cell(gateway, url, body, requests=requests, concurrency=concurrency)
            results[(route, stream)] = per_req
            print(f"{route:<24} {'stream' if stream else 'json':<7} {per_req:>9.2f}ms")
    for stream in (False, True):
        ratio = results[(ROUTES[1], stream)] / max(results[(ROUTES[0], stream)], 1e-9)
        print(f"litellm / native, {'stream' if stream else 'json'}: {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
