"""CPU per request of the gateway's own request path, in process: everything but the HTTP server.

    python benchmarks/bench_front_door.py [--requests 4000] [--concurrency 16] [--rounds 3] [--notask] CHECKOUT ...

Each CHECKOUT (a directory holding a copy of this repository; ``.`` for this one) runs in its own
child process pinned to core 1: ``Services.build`` with the packaged policy and Kimi pointed at the
instant upstream (``canned_upstream.py``, core 0), then ``--requests`` chat requests from
``--concurrency`` tasks straight into the ``FrontDoor`` (the ASGI endpoint ``router serve`` hands
the door paths to) with a scope, ``receive`` and ``send`` of our own — auth, tenant, parse,
classify, decide, dispatch over the relay's pool, render, account — as JSON and as a stream
(``"stream": true``, 19 frames). The figure is the child's CPU (utime + stime, all threads) per
request; checkouts alternate cell by cell, ``--rounds`` times; medians [range]. ``--notask`` sends
``X-Router-Task-Type: simple`` (classification skipped: the rest at a finer resolution).
Not covered: the HTTP server (uvicorn's parsing, its response head, the client socket's writes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gateway import free_port  # noqa: E402

BODY = {"model": "kimi:instant", "messages": [{"role": "user", "content":
        "Summarise the main causes of the 1929 stock market crash."}], "max_tokens": 64}

CHILD = r'''
import asyncio, json, os, resource, sys, time
root, base, n, c, notask = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
sys.path.insert(0, root)
os.chdir(root)
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import uvloop
from router.api.front_door import FrontDoor
from router.app import front_door
from router.services import Services
from router.settings import Settings

env = {"KIMI_API_BASE": base, "KIMI_METRICS_URL": "", "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}
body = json.loads(sys.argv[6])
raw = {False: json.dumps(body).encode(), True: json.dumps({**body, "stream": True}).encode()}
head = [(b"content-type", b"application/json")] + ([(b"x-router-task-type", b"simple")] if notask else [])

def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

async def main() -> dict[str, float]:
    services = Services.build(Settings(), env=env)
    await services.start()
    door_app, _ = front_door(lambda: services)
    door_app.bind(services)
    door = door_app.door_for("POST", "/v1/chat/completions")

    async def one(stream: bool) -> None:
        data = raw[stream]
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                 "headers": [*head, (b"content-length", str(len(data)).encode())]}
        sent = False
        status = 0
        parts = []

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": data, "more_body": False}
            await asyncio.Event().wait()  # the client stays; the watcher (if any) is cancelled

        async def send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                parts.append(message.get("body", b""))

        await door_app(scope, receive, send, door)
        if status != 200 or (stream and not b"".join(parts).endswith(b"data: [DONE]\n\n")):
            raise SystemExit(f"HTTP {status}: {b''.join(parts)[:300]!r}")

    async def cell(stream: bool, count: int) -> float:
        left = count

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one(stream)

        before = cpu()
        await asyncio.gather(*(worker() for _ in range(c)))
        return (cpu() - before) / count * 1e6

    out = {}
    for stream in (False, True):
        await cell(stream, max(200, n // 10))  # warm-up: pools, caches, first-call paths
        out["stream" if stream else "json"] = await cell(stream, n)
    await services.stop()
    return out

print(json.dumps(uvloop.run(main())))
'''


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkouts", nargs="+")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--notask", action="store_true")
    args = parser.parse_args()
    port = free_port()
    upstream = subprocess.Popen(pinned("0", [sys.executable, str(HERE / "canned_upstream.py"), str(port)]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, dict[str, list[float]]] = {spec: {"json": [], "stream": []} for spec in args.checkouts}
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for n in range(1, args.rounds + 1):
            for spec in args.checkouts:
                root = str(Path(spec).resolve())
                done = subprocess.run(
                    pinned("1", [sys.executable, "-c", CHILD, root, f"http://127.0.0.1:{port}/v1",
                                 str(args.requests), str(args.concurrency), "1" if args.notask else "0",
                                 json.dumps(BODY)]),
                    capture_output=True, text=True, env={**os.environ, "ROUTER_LOG_LEVEL": "warning"})
                if done.returncode != 0:
                    raise SystemExit(f"{spec}: {done.stderr[-3000:]}")
                got = json.loads(done.stdout.strip().splitlines()[-1])
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"round {n} {spec:<28} JSON {got['json']:7.1f} µs  stream {got['stream']:7.1f} µs"
                      f"  (load {load})", flush=True)
                for kind in ("json", "stream"):
                    results[spec][kind].append(got[kind])
    finally:
        upstream.terminate()
        upstream.wait(timeout=15)
    for spec, kinds in results.items():
        print(f"{spec:<28}" + "".join(
            f"  {kind} {statistics.median(v):7.1f} µs [{min(v):.0f}-{max(v):.0f}]" for kind, v in kinds.items()))


if __name__ == "__main__":
    main()
