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

CPU is ``time.process_time`` over ``--calls`` calls; the median of ``--runs`` runs is printed in
µs per call. The access log's writer thread runs meanwhile (its share is in ``account``).
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
import json, os, sys, time, statistics
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

def fresh(fn):  # a new Routed per call, as each request has its own
    def call():
        global routed
        routed = prepare()
        fn()
    return call

out = {}
for name, fn in (("parse", parse), ("prepare", prepare), ("prepare+answer", fresh(answer)),
                 ("prepare+stream", fresh(stream)), ("account", account)):
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
    print(f"{'µs per call (median)':<24}" + "".join(f"{spec[-22:]:>24}" for spec in results))
    for name in names:
        print(f"{name:<24}" + "".join(f"{statistics.median(r[name]):>24.2f}" for r in results.values()))


if __name__ == "__main__":
    main()
