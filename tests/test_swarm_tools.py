"""Swarm v2 over HTTP: sub-agents that call MCP tools and are each routed to the right model.

Real parts only: a gateway under uvicorn, the demo upstreams, and the demo MCP servers (search over
the bundled corpus, calculator) spoken to over the real MCP protocol (streamable HTTP; stdio in
``test_stdio_transport``) with the official ``mcp`` SDK. Spans go over OTLP to a real receiver.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from router.demo import corpus
from router.observability.tracing import Tracer
from router.policy.model import McpServer
from router.swarm.tools import RunTools
from tests.conftest import Gateway, default_policy
from tests.support.otlp import OTLPReceiver, trace_of

RESEARCH = """Research these 12 items and give one line each:
1. Lisbon population
2. Rust memory safety
3. PostgreSQL replication
4. Compute 17 * 23 + 4
5. AWS egress pricing
6. Prove that the square root of 2 is irrational
7. Tokyo transit
8. Compute (1200 - 350) / 5
9. lithium supply
10. QUIC latency
11. Redis throughput
12. Prove that there are infinitely many primes
"""
SEARCHED = ["t1", "t2", "t3", "t5", "t7", "t9", "t10", "t11"]
CALCULATED = {"t4": "17 * 23 + 4 = 395", "t8": "(1200 - 350) / 5 = 170"}
# Fast upstream estimates, so a swarm fits a budget of a few seconds and a slow tool would not.
FAST = {name: {"latency": {"ttft_ms": 30, "output_tokens_per_s": 20000}} for name in ("kimi", "gpt", "gpt-mini",
                                                                                     "claude")}


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as rx:
        yield rx


def tracer_for(receiver: OTLPReceiver) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint)))
    return Tracer(provider)


def ask(gw: Gateway, text: str, **router: Any) -> tuple[dict[str, Any], float]:
    body: dict[str, Any] = {"model": "auto:swarm", "messages": [{"role": "user", "content": text}]}
    if router:
        body["router"] = router
    started = time.perf_counter()
    response = httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=120,
                          headers={"authorization": "Bearer test-key"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return response.json(), elapsed


def rows(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in answer["router"]["swarm"]["subtasks"]}


# --- acceptance: a 12-item research prompt -----------------------------------------------------
def test_research_prompt_uses_the_search_tool_and_routes_subtasks(
        receiver: OTLPReceiver, gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(), tracer=tracer_for(receiver))
    answer, _ = ask(gw, RESEARCH)
    swarm = answer["router"]["swarm"]
    by_id = rows(answer)
    # Sub-agents called the search tool over MCP: in router.swarm, at the MCP server, in metrics.
    assert swarm["tools"]["by_tool"]["search"] == {"ok": len(SEARCHED)}
    assert swarm["tools"]["by_tool"]["calculate"] == {"ok": len(CALCULATED)}
    assert gw.demo.mcp_calls() == {"search": len(SEARCHED), "calculate": len(CALCULATED)}
    for sid in SEARCHED:
        assert [c["tool"] for c in by_id[sid]["tool_calls"]] == ["search"], by_id[sid]
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert f'router_swarm_tool_calls_total{{status="ok",tool="search"}} {len(SEARCHED)}.0' in metrics
    # Different kinds of subtasks landed on different routes, each counted with its cost.
    # Look-ups are never proofs; a tech topic ("Redis throughput") may fairly read as coding.
    assert by_id["t1"]["task_type"] == "simple"
    assert {by_id[s]["task_type"] for s in SEARCHED} <= {"simple", "coding"}
    assert {by_id[s]["task_type"] for s in ("t6", "t12")} == {"reasoning"}
    assert by_id["t1"]["route"] != by_id["t6"]["route"]
    assert len(swarm["routes"]) >= 2
    assert sum(r["agents"] for r in swarm["routes"].values()) == 12
    assert all(r["cost_usd"] > 0 for r in swarm["routes"].values())
    assert 'router_swarm_agent_routes_total{route="kimi:instant",task_type="simple"}' in metrics
    # Actual cost within the ceiling; the tools' cost is part of it.
    assert 0 < swarm["cost_usd"] <= swarm["max_cost_usd"]
    assert swarm["tools"]["cost_usd"] == pytest.approx(len(SEARCHED) * 0.0001)
    # The answer cites what the tool returned: each searched item's top document, id and text.
    content = answer["choices"][0]["message"]["content"]
    for item in ("Lisbon population", "Rust memory safety", "Tokyo transit", "Redis throughput"):
        top = corpus.search(f"Research these 12 items and give one line each — only this item: {item}")[0]
        assert f"[{top.id}] {top.title}" in content, (item, top)
    for result in CALCULATED.values():
        assert result in content
    # Spans: one router.swarm.tool per call, under the sub-agent span that made it.
    tree = trace_of(receiver.wait_for(lambda spans: sum(s.name == "router.swarm.tool" for s in spans) >= 10
                                      and any(s.name == "router.request" for s in spans), timeout=20),
                    answer["router"]["request_id"])
    tools = [s for s in tree.spans if s.name == "router.swarm.tool"]
    assert len(tools) == len(SEARCHED) + len(CALCULATED), tree.render()
    agents = {s.span_id: s for s in tree.spans if s.name == "router.swarm.agent"}
    assert all(t.parent_id in agents for t in tools), tree.render()
    assert {t.attributes["router.swarm.tool"] for t in tools} == {"search", "calculate"}
    assert "Lisbon" not in " ".join(repr(s.attributes) for s in tools)  # ids and names only, no text


# --- acceptance: a failing MCP server degrades only the sub-agents that use it --------------------
@pytest.mark.parametrize("fault", ["down", "slow", "erroring"])
def test_a_failing_search_server_degrades_only_its_sub_agents(gateway_factory: Callable[..., Gateway],
                                                                fault: str) -> None:
    policy = default_policy(backends=FAST, swarm={"tools": {"tool_timeout_s": 1.0}})
    gw = gateway_factory(policy)
    for name in ("kimi", "gpt", "claude"):
        gw.demo.set_behavior(name, ttft_ms=5, tokens_per_s=0)
    if fault == "down":
        gw.demo.stop_mcp("search")
    elif fault == "slow":
        gw.demo.set_mcp_behavior("search", delay_s=30)  # far beyond the budget: waiting for it would show
    else:
        gw.demo.set_mcp_behavior("search", fail=True)
    budget_ms = 8000
    answer, elapsed = ask(gw, RESEARCH, latency_budget_ms=budget_ms)
    assert elapsed * 1000 <= budget_ms, f"{elapsed:.2f} s > budget"
    swarm = answer["router"]["swarm"]
    by_id = rows(answer)
    assert swarm["agents_failed"] == 0 and swarm["agents_run"] == 12
    content = answer["choices"][0]["message"]["content"]
    # The calculator's sub-agents are untouched.
    for sid, result in CALCULATED.items():
        assert [(c["tool"], c["status"]) for c in by_id[sid]["tool_calls"]] == [("calculate", "ok")]
        assert result in content
    # The search sub-agents answered without it, and the answer names what failed.
    if fault == "down":
        assert "search" in swarm["tools"]["servers_failed"]
        assert "MCP server search unavailable" in content
        assert all(not by_id[s]["tool_calls"] for s in SEARCHED)
        assert content.count("tool server unavailable") >= len(SEARCHED)
    else:
        status = "timeout" if fault == "slow" else "error"
        assert swarm["tools"]["by_tool"]["search"] == {status: len(SEARCHED)}
        assert f"tool search: {len(SEARCHED)} call(s) {status}" in content
        assert all(by_id[s]["tool_calls"][0]["status"] == status for s in SEARCHED)
        assert content.count("the search tool failed") >= len(SEARCHED)
    assert not re.search(r"\[doc-\d{4}\]", content)  # nothing is cited that no tool returned


# --- bounds of the agent loop -----------------------------------------------------------------
def test_the_per_agent_token_cap_ends_the_loop_and_keeps_what_was_done(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(swarm={"tools": {"agent_max_tokens": 50}}))
    answer, _ = ask(gw, "Look up: Lisbon population, Oslo rainfall, Compute 6 * 7")
    for row in rows(answer).values():
        assert row["steps"] == 1 and row["stopped"].startswith("agent_max_tokens=50"), row
        assert row["tool_calls"] == []  # the cap was reached before any tool ran
    assert gw.demo.mcp_calls() == {}


def test_without_mcp_servers_sub_agents_are_text_workers(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(swarm={"tools": {"servers": {"search": {"url": ""},
                                                                     "calculator": {"url": ""}}}}))
    answer, _ = ask(gw, "Look up: Lisbon population, Oslo rainfall, Madrid housing")
    assert answer["router"]["swarm"].get("tools") is None
    workers = [r["body"] for r in gw.demo.stats("kimi")["last_requests"]
               if "swarm worker" in str(r["body"]["messages"][0]["content"])]
    assert workers and all("tools" not in b for b in workers)


# --- the MCP client layer over stdio ---------------------------------------------------------
def test_stdio_transport_lists_and_calls_and_reports_a_dead_server() -> None:
    async def run() -> None:
        servers = {"local": McpServer(transport="stdio", command=sys.executable,
                                      args=["-m", "router.demo.mcp_cli"]),
                   "dead": McpServer(url="http://127.0.0.1:9/mcp")}
        tools = await RunTools.open(servers, 20)
        try:
            assert set(tools.specs) == {"search", "calculate"}
            assert tools.failed.keys() == {"dead"} and "ConnectError" in tools.failed["dead"]
            ok = await tools.call("calculate", '{"expression": "2 ** 10"}', 10)
            assert (ok.status, ok.text) == ("ok", "2 ** 10 = 1024")
            bad = await tools.call("calculate", '{"expression": "1 / 0"}', 10)
            assert bad.status == "error" and "division by zero" in bad.text
            junk = await tools.call("calculate", "not json", 10)
            assert junk.status == "error" and "JSON object" in junk.text
            found = await tools.call("search", '{"query": "Oslo rainfall"}', 10)
            assert found.status == "ok" and found.text.startswith("[doc-")
        finally:
            await tools.aclose()

    asyncio.run(run())


# --- the dry run shows the planned route per subtask ------------------------------------------
def test_dry_run_shows_the_route_of_each_subtask_without_calling_anything(
        gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy())
    response = httpx.post(f"{gw.base_url}/route", json={"model": "auto:swarm",
                                                        "messages": [{"role": "user", "content": RESEARCH}]})
    assert response.status_code == 200
    swarm = response.json()["swarm"]
    planned = {s["id"]: s for s in swarm["subtasks"]}
    assert len(planned) == 12 and planned["t1"]["instruction"] == "Lisbon population"
    assert planned["t1"]["task_type"] == "simple" and planned["t6"]["task_type"] == "reasoning"
    assert planned["t1"]["route"] != planned["t6"]["route"]
    assert swarm["tools"] == ["calculator", "search"] and "planner may split differently" in swarm["subtasks_note"]
    assert gw.demo.stats("kimi")["requests"] == 0 and gw.demo.mcp_calls() == {}


def test_a_failure_description_never_carries_the_servers_url() -> None:
    from router.swarm.tools import describe

    error = ExceptionGroup("g", [ValueError("Client error '401' for url 'https://mcp.example/mcp?token=SECRET'")])
    assert "SECRET" not in describe(error) and describe(error).startswith("ValueError: Client error '401'")


def test_max_steps_one_lets_no_tool_run(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(swarm={"tools": {"max_steps": 1}}))
    answer, _ = ask(gw, "Look up: Lisbon population, Oslo rainfall, Compute 6 * 7")
    assert all(r["steps"] == 1 and r["tool_calls"] == [] for r in rows(answer).values())
    workers = [r["body"] for r in gw.demo.stats("kimi")["last_requests"]
               if "swarm worker" in str(r["body"]["messages"][0]["content"])]
    assert workers and all(b["tool_choice"] == "none" for b in workers)
    assert gw.demo.mcp_calls() == {}
