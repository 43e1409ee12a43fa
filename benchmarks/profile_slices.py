"""Where the gateway's CPU goes, by slice, from a py-spy raw profile (``py-spy record -f raw``).

    py-spy record -p <gateway pid> -d 20 -r 250 -f raw -o prof.raw --nonblocking
    python benchmarks/profile_slices.py prof.raw [more.raw ...]

Each sample's stack is read leaf first and counted in the slice of the first frame that matches a
slice's markers (so a prometheus call made from accounting counts as metrics, not accounting).
py-spy's ``--nonblocking`` mode sometimes truncates stacks at the root; reading from the leaf keeps
those samples in the right slice. Idle samples (the event loop waiting) are not recorded by py-spy.
"""

from __future__ import annotations

import sys
from collections import Counter

# (slice, markers); a frame matches when any marker is a substring of it. Order matters only within
# one frame (the first slice whose marker matches); frames are scanned leaf first.
SLICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("classification", ("router/classifier/", "Pipeline._label")),
    ("tracing", ("router/observability/tracing.py", "opentelemetry/")),
    ("metrics", ("prometheus_client/", "router/observability/metrics.py")),
    ("logging", ("router/observability/access_log.py", "logging/__init__.py", "decision_log.py",
                 "router/tuning/")),
    ("header building", ("Routed.headers", "Routed.router_object", "adjusted_params")),
    ("parsing", ("router/protocol.py", "pydantic", "parse_json_body", "model_names.py", "orjson",
                 "ChatCompletionsDoor.parse")),
    ("decide", ("router/engine/", "router/policy/")),
    ("dispatch", ("router/dispatch/", "aiohttp/")),
    ("tenants", ("router/tenants/", "router/tenancy.py")),
    ("pipeline (accounting, glue)", ("router/pipeline/", "router/exchange.py", "router/doors/",
                                     "router/offload.py")),
    ("server (HTTP in/out, event loop)", ("uvicorn/", "httptools", "router/server.py", "router/api/",
                                          "router/app.py", "asyncio/", "router/sse.py", "selectors.py")),
)


def slice_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, markers in SLICES:
            if any(m in frame for m in markers):
                return name
    return "other (gc, threads, unattributed)"


def main(paths: list[str]) -> None:
    counts: Counter[str] = Counter()
    for path in paths:
        with open(path) as raw:
            for line in raw:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                counts[slice_of(stack.split(";"))] += int(n)
    total = sum(counts.values())
    print(f"{total} samples")
    for name, _ in SLICES:
        print(f"  {name:<36} {counts[name] / total * 100:5.1f} %")
    other = "other (gc, threads, unattributed)"
    print(f"  {other:<36} {counts[other] / total * 100:5.1f} %")


if __name__ == "__main__":
    main(sys.argv[1:])
