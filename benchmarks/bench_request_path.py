"""CPU per call of the request path's own pieces, in process, checkouts side by side.

    python benchmarks/bench_request_path.py [--calls 3000] [--runs 5] CHECKOUT [CHECKOUT ...]

Each CHECKOUT (a directory holding a copy of this repository; ``.`` for this one) runs in its own
child process: ``Services.build`` with the packaged policy (backends pointed at an address nothing
listens on; nothing is dispatched), then, per call, on the same chat body ``cpu_per_request.py``
sends (``X-Router-Task-Type: simple``, so the classifier — measured by ``bench_classifier.py`` —
is left out):

- ``prepare``: validation, controls, model names, request facts, the decision, the ``Routed``;
- ``prepare+answer``: a fresh ``prepare``, then ``router_object`` + ``headers`` (a JSON answer);
  ``prepare+stream``: the same with the router object built twice (the stream's head and end) —
  subtract ``prepare`` for the answer's own share;
- ``account``: ``Accounting.finished`` (metrics, the access-log line to /dev/null, the recorder);
- ``parse``: the body's JSON decode with its caps (``parse_json_body``).

- ``tenant``: the front door's tenant (``TenantGate.resolve``, no key: the default tenant) and its
  admission (``TenantGate.admit``), one event-loop turn included;
- ``json answer`` / ``stream (19 frames)``: a fresh ``prepare``, then the whole answer through the
  pipeline — dispatch over the relay (its connection pool swapped for one that hands back
  ``canned_upstream.py``'s answer at once: no network, every frame already in memory), the
  router object and headers, accounting; the stream rendered by the chat door and read to its end.
  One event-loop turn per call (~8 µs of it is ``run_until_complete`` itself).

CPU is ``time.process_time`` over ``--calls`` calls; the median (and the least) of ``--runs`` runs
is printed in µs per call. The access log's writer thread runs meanwhile (its share is in ``account``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BODY = {"model": "kimi:instant", "messages": [{"role": "user", "content":
        "Summarise the main causes of the 1929 stock market crash."}], "max_tokens": 64}

CHILD = r'''
import asyncio, json, os, sys, time, statistics
root, calls, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
os.chdir(root)
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import orjson
from router.settings import Settings
from router.services import Services
from router.dispatch.upstream import Usage
from router.observability.access_log import AccessLog
from router.protocol import parse_json_body
env = {"KIMI_API_BASE": "http://127.0.0.1:9/v1", "KIMI_METRICS_URL": "", "OPENAI_API_KEY": "",
       "ANTHROPIC_API_KEY": ""}
services = Services.build(Settings(), env=env)
pipeline = services.pipeline
pipeline.accounting.access_log = AccessLog(open(os.devnull, "wb"))
raw = orjson.dumps(json.loads(sys.argv[4]))
headers = {"content-type": "application/json", "x-router-task-type": "simple"}
usage = Usage(input_tokens=20, output_tokens=60)

def prepare():
    return pipeline.prepare(parse_json_body(raw), headers, arrived=time.perf_counter())

routed = prepare()
cand = routed.chosen

def answer():
    obj = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=0, cost_usd=0.0001)
    routed.headers(obj)

def stream():
    head = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=0, cost_usd=None)
    routed.headers(head)
    routed.router_object(route=cand.route, mode=cand.mode, fallbacks=0, cost_usd=0.0001)

def account():
    pipeline.accounting.finished(routed, route=cand.route, mode=cand.mode, status="ok", usage=usage,
                                 cost=0.0001, upstream_s=0.001, fallbacks=0)

def parse():
    parse_json_body(raw)

# A stream whose 19 frames (canned_upstream.py's) are all in memory when the relay asks: the
# relay's pool is swapped for one that answers at once, so a call measures the gateway's own
# per-frame work (parse, check, stamp, render, coalesce) without the network's timing.
def _frame(delta, finish=None, usage=None):  # as canned_upstream.py writes them
    chunk = {"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1, "model": "moonshotai/Kimi-K2.5",
             "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if usage:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"

SSE = b"".join([_frame({"role": "assistant", "content": ""}), *(_frame({"content": "word "}) for _ in range(16)),
                _frame({}, "stop"), _frame({}, usage={"prompt_tokens": 20, "completion_tokens": 16,
                                                      "total_tokens": 36}), b"data: [DONE]\n\n"])

JSON_ANSWER = orjson.dumps({"id": "chatcmpl-canned", "object": "chat.completion", "created": 1,
                            "model": "moonshotai/Kimi-K2.5", "choices": [{"index": 0, "message": {
                                "role": "assistant", "content": "word " * 16}, "finish_reason": "stop",
                                "logprobs": None}], "usage": {"prompt_tokens": 20, "completion_tokens": 16,
                                                              "total_tokens": 36}})

class _Answer:
    status = 200
    headers = {}
    async def read(self):
        return JSON_ANSWER
    def stream_into(self, sink):
        sink.feed(SSE)
        sink.feed_eof()
    def release_at_end(self):
        pass
    def close(self):
        pass

class _InstantPool:
    async def request(self, *args, **kwargs):
        return _Answer()

services.clients.relay._pool = _InstantPool()
stream_raw = orjson.dumps({**json.loads(sys.argv[4]), "stream": True})
tenant = services.tenants.resolve(headers)
loop = asyncio.new_event_loop()
from router.doors.chat_completions import ChatStreamRenderer, render_answer

async def _stream_once():
    routed = pipeline.prepare(parse_json_body(stream_raw), headers, arrived=time.perf_counter(), tenant=tenant)
    out = await pipeline.stream(routed)
    async for _ in out.frames(ChatStreamRenderer()):
        pass

def stream_frames():
    loop.run_until_complete(_stream_once())

async def _answer_once():
    routed = pipeline.prepare(parse_json_body(raw), headers, arrived=time.perf_counter(), tenant=tenant)
    render_answer(await pipeline.complete(routed))

def json_answer():
    loop.run_until_complete(_answer_once())

def tenant_gate():  # the front door's tenant, and the admission (no key: the default tenant)
    loop.run_until_complete(services.tenants.admit(routed_t, None, None))

routed_t = pipeline.prepare(parse_json_body(raw), headers, arrived=time.perf_counter(),
                            tenant=services.tenants.resolve(headers))

def fresh(fn):  # a new Routed per call, as each request has its own
    def call():
        global routed
        routed = prepare()
        fn()
    return call

out = {}
for name, fn in (("parse", parse), ("prepare", prepare), ("prepare+answer", fresh(answer)),
                 ("prepare+stream", fresh(stream)), ("account", account),
                 ("tenant", lambda: (services.tenants.resolve(headers), tenant_gate())),
                 ("json answer", json_answer), ("stream (19 frames)", stream_frames)):
    for _ in range(200):
        fn()
    values = []
    for _ in range(runs):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        values.append((time.process_time() - t0) / calls * 1e6)
    out[name] = values
print(json.dumps(out))
services.access_log.close()
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkouts", nargs="+")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for spec in args.checkouts:
        root = str(Path(spec).resolve())
        done = subprocess.run([sys.executable, "-c", CHILD, root, str(args.calls), str(args.runs), json.dumps(BODY)],
                              capture_output=True, text=True, env={**os.environ, "ROUTER_LOG_LEVEL": "warning"})
        if done.returncode != 0:
            raise SystemExit(f"{spec}: {done.stderr[-2000:]}")
        results[spec] = json.loads(done.stdout.strip().splitlines()[-1])
    names = list(next(iter(results.values())))
    print(f"{'µs per call: median (min)':<24}" + "".join(f"{spec[-22:]:>24}" for spec in results))
    for name in names:
        print(f"{name:<24}" + "".join(f"{statistics.median(r[name]):>14.2f} (min {min(r[name]):6.1f})"
                                      for r in results.values()))


if __name__ == "__main__":
    main()
