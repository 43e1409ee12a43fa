"""Swarm fan-out at N = 3, 10, 30, 100 sub-agents, each upstream call taking 1 s (simulated).

The real ``Swarm`` (planner → fan-out → aggregator) runs in-process against a demo Kimi upstream
(vLLM-flavoured) started as a separate process (``python -m router.demo --ttft-ms 1000
--tokens-per-s 0``: every call takes ~1 s) over loopback HTTP, as a real pool would be; with the
swarm's capacity raised to 100 (``swarm.concurrency: 100``, Kimi ``max_concurrency: 128``) so
N = 100 is one wave. Reported per N (median of ``--repeat`` runs):

- ``wall``: the whole swarm (plan + fan-out + aggregate; ~3 s of it is the three 1 s stages);
- ``fan-out``: the fan-out stage alone (ideal: 1000 ms, one wave);
- ``efficiency``: ``router.swarm.parallel_efficiency`` (summed agent time / (fan-out × slots));
- ``overhead/agent``: (fan-out − the fastest agent's call) / N — everything the fan-out stage takes
  beyond one upstream call (the ideal with enough capacity), spread over the agents: fan-out
  decision, task start-up, limiters, ledger, building and sending N requests through one event loop,
  and the upstream process handling N requests one after another. An upper bound of our cost;
- ``vs ideal``: (fan-out − the simulated latency) / N, which also counts one HTTP round trip;
- ``orch/agent``: ``router.swarm.orchestration_ms_per_agent`` — fan-out time beyond the bound the
  agents' own measured durations impose (scheduling, limiters, ledger, task start-up only).

- ``route ms``: ``router.swarm.routing_ms`` — classifying and routing every subtask (before the
  fan-out; per-subtask routing with the real classifier is on in both modes).

With ``--tools`` every sub-agent also runs its agent loop against the demo MCP search server (a
separate process, ``python -m router.demo.mcp_cli --http --tool search``, over streamable HTTP):
one ``search`` call, then a second 1 s model call that cites it, so an agent takes ~2 s plus its
tool time. There, ``overhead/agent`` includes the MCP server answering N calls in turn (tool time);
``orch/agent`` excludes it (the agents' measured durations include their tool calls).

Targets (exit status 1 when missed): efficiency >= 0.9 at N = 100 and ``orch/agent`` <= 1 ms in
both modes; without tools also fan-out <= 1300 ms at N = 100 and overhead <= 1 ms per agent.

    python benchmarks/bench_swarm.py [--repeat 3] [--latency-ms 1000] [--tools]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.services import Services  # noqa: E402
from router.settings import PACKAGED_POLICY, Settings  # noqa: E402

SIZES = (3, 10, 30, 100)
FANOUT_TARGET_MS = 1300.0
OVERHEAD_TARGET_MS = 1.0
EFFICIENCY_TARGET = 0.9


def _policy(directory: Path) -> Path:
    policy = yaml.safe_load(PACKAGED_POLICY.read_text())
    policy["swarm"]["concurrency"] = 100
    policy["backends"]["kimi"]["max_concurrency"] = 128
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def _body(n: int) -> dict[str, Any]:
    items = "\n".join(f"- topic number {i}" for i in range(1, n + 1))
    return {"model": "auto:swarm", "messages": [{"role": "user", "content": f"Summarise each of these:\n{items}"}]}


async def _run(services: Services, n: int) -> dict[str, Any]:
    serving = services.pipeline
    routed = serving.prepare(_body(n), {"x-router-task-type": "decomposable"})
    assert serving.swarm is not None
    result = await serving.swarm.complete(routed)
    swarm = result.swarm
    assert swarm["agents_run"] == n and swarm["agents_failed"] == 0, swarm
    if "tools" in swarm:
        assert swarm["tools"]["by_tool"] == {"search": {"ok": n}}, swarm["tools"]
    return swarm


async def _bench(services: Services, repeat: int, latency_ms: float) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    await _run(services, 3)  # warm the connection pool and the live estimates
    for n in SIZES:
        runs = [await _run(services, n) for _ in range(repeat)]

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r[key] for r in runs))

        fanout = med("fanout_ms")
        rows.append({"n": n, "wall_ms": med("wall_ms"), "fanout_ms": fanout,
                     "efficiency": med("parallel_efficiency"),
                     "overhead_ms_per_agent": max(0.0, fanout - med("agent_ms_min")) / n,
                     "vs_ideal_ms_per_agent": max(0.0, fanout - latency_ms) / n,
                     "orchestration_ms_per_agent": med("orchestration_ms_per_agent"),
                     "routing_ms": med("routing_ms")})
    await services.clients.aclose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--tools", action="store_true", help="sub-agents call the demo MCP search server")
    args = parser.parse_args(argv)
    env: dict[str, str] = {}
    tools = None
    if args.tools:
        tools = subprocess.Popen([sys.executable, "-m", "router.demo.mcp_cli", "--http", "--tool", "search"],
                                 stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert tools.stdout is not None
        env["SWARM_SEARCH_MCP_URL"] = tools.stdout.readline().strip()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "router.demo", "--kind", "vllm", "--name", "kimi", "--ttft-ms", str(args.latency_ms),
         "--tokens-per-s", "0", "--max-num-seqs", "256"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert upstream.stdout is not None
        base_url = upstream.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(policy_file=_policy(Path(tmp)), port=0)
            # Only Kimi is configured: the swarm's three roles all run on it.
            from router.classifier import TaskClassifier

            services = Services.build(settings, env={"KIMI_API_BASE": base_url, **env},
                                      classifier=TaskClassifier.load())
            rows, elapsed = _timed(services, args)
    finally:
        for process in (upstream, tools):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
    print(f"swarm fan-out, {args.latency_ms:.0f} ms per upstream call, median of {args.repeat} ({elapsed:.1f} s)"
          + (", sub-agents with the MCP search tool" if args.tools else ""))
    return _report(rows, args.latency_ms, args.tools)


def _timed(services: Services, args: argparse.Namespace) -> tuple[list[dict[str, float]], float]:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    started = time.perf_counter()
    rows = runner(_bench(services, args.repeat, args.latency_ms))
    services.access_log.close()
    return rows, time.perf_counter() - started


def _report(rows: list[dict[str, float]], latency_ms: float, tools: bool) -> int:
    print(f"{'N':>4} {'wall ms':>9} {'fan-out ms':>11} {'efficiency':>11} {'overhead/agent ms':>18} "
          f"{'vs ideal ms':>12} {'orch/agent ms':>14} {'route ms':>9}")
    for r in rows:
        print(f"{r['n']:>4.0f} {r['wall_ms']:>9.1f} {r['fanout_ms']:>11.1f} {r['efficiency']:>11.3f} "
              f"{r['overhead_ms_per_agent']:>18.3f} {r['vs_ideal_ms_per_agent']:>12.3f} "
              f"{r['orchestration_ms_per_agent']:>14.3f} {r['routing_ms']:>9.2f}")
    last = rows[-1]
    ok = last["efficiency"] >= EFFICIENCY_TARGET and all(
        r["orchestration_ms_per_agent"] <= OVERHEAD_TARGET_MS for r in rows)
    targets = f"efficiency >= {EFFICIENCY_TARGET} at N=100, orch <= {OVERHEAD_TARGET_MS} ms/agent"
    if not tools:
        ok = ok and last["fanout_ms"] <= FANOUT_TARGET_MS + (latency_ms - 1000.0) and all(
            r["overhead_ms_per_agent"] <= OVERHEAD_TARGET_MS for r in rows)
        targets += f", fan-out <= {FANOUT_TARGET_MS:.0f} ms at N=100, overhead <= {OVERHEAD_TARGET_MS} ms/agent"
    print(f"targets: {targets}: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
