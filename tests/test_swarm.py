"""Swarm mode over HTTP, with the official ``openai`` SDK, against real gateways and demo upstreams.

Each upstream call is made to take ~300 ms (``ttft_ms=300, tokens_per_s=0``) where timing matters,
so a serial run and a parallel one are easy to tell apart.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Gateway, default_policy

CITIES = [f"City number {i}" for i in range(1, 31)]
THIRTY = "Write a two-line travel note for each of these cities:\n" + "\n".join(f"- {c}" for c in CITIES)


# The orchestration tests below run text workers on swarm.worker (no MCP tools, no per-subtask
# routing), so each agent is exactly one upstream call; tools and routing: tests/test_swarm_tools.py.
TEXT_WORKERS: dict[str, Any] = {"swarm": {"route_subtasks": False, "tools": {
    "servers": {"search": {"url": ""}, "calculator": {"url": ""}}}}}


def text_workers(**overrides: Any) -> dict[str, Any]:
    return default_policy(**{**overrides, "swarm": {**TEXT_WORKERS["swarm"], **overrides.get("swarm", {})}})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def router_of(completion: Any) -> dict[str, Any]:
    return dict(completion.model_extra["router"])


def slow_gateway(gateway_factory: Callable[..., Gateway], policy: dict[str, Any] | None = None,
                 ms: float = 300) -> Gateway:
    gw = gateway_factory(policy or text_workers())
    for name in ("kimi", "gpt"):
        gw.demo.set_behavior(name, ttft_ms=ms, tokens_per_s=0)
    return gw


# --- acceptance: parallel fan-out ---------------------------------------------------------------
def test_thirty_items_run_as_thirty_agents_in_one_wave(gateway_factory: Callable[..., Gateway]) -> None:
    gw = slow_gateway(gateway_factory)
    client = gw.client()
    started = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(model="auto:swarm", messages=user(THIRTY))
    elapsed = time.perf_counter() - started
    completion = raw.parse()
    swarm = router_of(completion)["swarm"]
    assert raw.headers["x-router-route"] == "swarm" and raw.headers["x-router-mode"] == "swarm"
    assert swarm["agents_planned"] == swarm["agents_run"] == 30 and swarm["agents_failed"] == 0
    assert elapsed <= 1.5, f"30 agents x 300 ms took {elapsed:.2f} s (serial would be ~9 s)"
    assert swarm["fanout_ms"] < 600 and swarm["parallel_efficiency"] > 0.7
    assert swarm["critical_path_ms"] <= swarm["wall_ms"] + 1
    assert swarm["agent_ms_sum"] >= 30 * 290
    answer = completion.choices[0].message.content or ""
    positions = [answer.index(f"only this item: {c}\n") for c in CITIES]
    assert positions == sorted(positions), "results are merged in plan order"
    assert completion.model == "moonshotai/Kimi-K2.5" and completion.object == "chat.completion"
    stats = gw.demo.stats("kimi")
    assert stats["by_role"] == {"planner": 1, "worker": 30, "aggregator": 1}
    assert float(raw.headers["x-router-cost-usd"]) == pytest.approx(swarm["cost_usd"])
    metrics = httpx.get(f"{gw.url}/metrics").text
    for line in ("router_swarm_agents_count 1.0", "router_swarm_agents_sum 30.0",
                 "router_swarm_duration_seconds_count 1.0", "router_swarm_parallel_efficiency_count 1.0",
                 "router_swarm_failed_agents_total 0.0"):
        assert line in metrics, line
    assert 'router_requests_total{api="chat",mode="swarm",route="swarm",status="ok",task_type=' in metrics


@pytest.mark.parametrize("where", ["swarm.concurrency", "backend.max_concurrency", "engine.max_num_seqs"])
def test_pool_capacity_of_ten_runs_three_waves(gateway_factory: Callable[..., Gateway], where: str) -> None:
    overrides = {"swarm.concurrency": {"swarm": {"concurrency": 10}},
                 "backend.max_concurrency": {"backends": {"kimi": {"max_concurrency": 10}}}}.get(where, {})
    gw = slow_gateway(gateway_factory, text_workers(**overrides))
    if where == "engine.max_num_seqs":  # the gateway would send 30 at once; the GPU pool runs 10
        gw.demo.set_behavior("kimi", max_num_seqs=10)
    completion = gw.client().chat.completions.create(model="auto:swarm", messages=user(THIRTY))
    swarm = router_of(completion)["swarm"]
    assert swarm["agents_run"] == 30 and swarm["agents_failed"] == 0
    assert 850 <= swarm["fanout_ms"] <= 1350, swarm  # ~3 waves of 300 ms
    assert gw.demo.stats("kimi")["max_in_flight"] <= (30 if where == "engine.max_num_seqs" else 10)
    if where != "engine.max_num_seqs":
        assert swarm["capacity"] == 10 and swarm["parallel_efficiency"] > 0.7


def test_progress_is_streamed_then_the_answer(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(text_workers())
    stream = gw.client().chat.completions.create(
        model="auto:swarm", messages=user("Compare these databases: PostgreSQL, MySQL, SQLite, DuckDB"),
        stream=True, stream_options={"include_usage": True})
    reasoning: list[str] = []
    content: list[str] = []
    finishes: list[str] = []
    router: dict[str, Any] = {}
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        extra = chunk.model_extra or {}
        if "router" in extra:
            router = extra["router"]
        for choice in chunk.choices:
            delta = choice.delta.model_extra or {}
            if delta.get("reasoning_content"):
                assert not content, "progress comes before the answer"
                reasoning.append(delta["reasoning_content"])
            if choice.delta.content:
                content.append(choice.delta.content)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    progress = "".join(reasoning)
    assert "plan: 4 subtask(s) -> 4 agent(s)" in progress
    assert all(f"agent {i}/4 done" in progress for i in range(1, 5))
    assert "from 4 agent results" in "".join(content)
    assert finishes == ["stop"]
    assert router["route"] == "swarm" and router["swarm"]["agents_run"] == 4 and router["cost_usd"] > 0


def test_a_failure_after_the_stream_started_is_one_error_chunk(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(text_workers(swarm={"planner": "gpt:default"}, retry={"attempts_per_route": 1}))
    gw.demo.set_behavior("gpt", error_rate=1.0)  # the planner's upstream is down
    body = {"model": "auto:swarm", "messages": user("Summarise: alpha, beta, gamma"), "stream": True}
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    errors = [orjson.loads(e)["error"] for e in events[:-1] if '"error"' in e[:10]]
    assert len(errors) == 1 and errors[0]["code"] == "upstream_error" and "gpt" in errors[0]["message"]
    assert "planning" in events[1]  # progress had started


# --- planning problems ---------------------------------------------------------------------------
def test_cyclic_plan_runs_without_the_cycle_and_says_so(gateway: Gateway) -> None:
    completion = gateway.client().chat.completions.create(
        model="auto:swarm", messages=user("DEMO_CYCLE Review: alpha, beta, gamma"))
    swarm = router_of(completion)["swarm"]
    assert swarm["cycle"] == ["t1", "t3", "t1"]
    assert any("dependency cycle t1 -> t3 -> t1" in note for note in swarm["plan_notes"])
    assert swarm["agents_run"] == 3 and swarm["agents_failed"] == 0


def test_bad_plan_is_repaired_once(gateway: Gateway) -> None:
    completion = gateway.client().chat.completions.create(
        model="auto:swarm", messages=user("DEMO_BAD_PLAN Summarise: alpha, beta"))
    swarm = router_of(completion)["swarm"]
    assert swarm["plan_repaired"] is True and swarm["agents_run"] == 2
    answer = completion.choices[0].message.content or ""
    assert "only this item: alpha" in answer and "only this item: beta" in answer


def test_client_output_settings_apply_to_the_final_answer(gateway: Gateway) -> None:
    client = gateway.client()
    completion = client.chat.completions.create(model="auto:swarm", messages=user("Summarise: alpha, beta, gamma"),
                                                max_tokens=50, temperature=0.2)
    assert completion.choices[0].finish_reason == "length"  # the merged answer was cut at 50 tokens
    aggregator = [r["body"] for r in gateway.demo.stats("kimi")["last_requests"]
                  if "swarm aggregator" in str(r["body"]["messages"][0]["content"])][-1]
    assert aggregator["max_tokens"] == 50 and aggregator["temperature"] == 0.2


def test_client_tools_are_the_aggregators_and_sub_agents_get_only_mcp_tools(gateway: Gateway) -> None:
    gateway.demo.reset("kimi")
    lookup = {"type": "function", "function": {"name": "lookup", "description": "the client's own tool",
                                               "parameters": {"type": "object", "properties": {
                                                   "query": {"type": "string"}}, "required": ["query"]}}}
    completion = gateway.client().chat.completions.create(
        model="auto:swarm", messages=user("Summarise: alpha, beta, gamma"), tools=[lookup],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "lookup"}})
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.tool_calls[0].function.name == "lookup"  # a normal tool_calls answer
    assert router_of(completion)["route"] == "swarm"
    bodies = [r["body"] for r in gateway.demo.stats("kimi")["last_requests"]]
    workers = [b for b in bodies if "swarm worker" in str(b["messages"][0]["content"])]
    assert workers and all({t["function"]["name"] for t in b.get("tools") or []} <= {"search", "calculate"}
                           for b in workers), "sub-agents never see the client's tools"
    aggregator = [b for b in bodies if "swarm aggregator" in str(b["messages"][0]["content"])][-1]
    assert [t["function"]["name"] for t in aggregator["tools"]] == ["lookup"]


# --- partial failure -----------------------------------------------------------------------------
def test_failing_sub_agents_give_a_partial_answer_naming_them(gateway_factory: Callable[..., Gateway]) -> None:
    # Planner and aggregator on the GPT demo; workers on Kimi, run one at a time so the demo's
    # deterministic failure pattern (ok, fail, fail, ok, ...) fails exactly the 2nd and 4th agent
    # (each fails its attempt and its one retry).
    policy = text_workers(
        swarm={"planner": "gpt:default", "aggregator": "gpt:default", "concurrency": 1},
        retry={"attempts_per_route": 1},
        circuit={"consecutive_failures": 100, "error_rate": 1.0, "window": 100})
    gw = gateway_factory(policy)
    gw.demo.set_behavior("kimi", error_rate=2 / 3)
    completion = gw.client().chat.completions.create(
        model="auto:swarm", messages=user("Summarise: alpha, beta, gamma, delta, epsilon"))
    swarm = router_of(completion)["swarm"]
    assert swarm["agents_run"] == 5 and swarm["agents_failed"] == 2
    assert [f["id"] for f in swarm["failed"]] == ["t2", "t4"]
    assert all(f["status"] == "failed" and "upstream_error" in f["reason"] for f in swarm["failed"])
    answer = completion.choices[0].message.content or ""
    assert "Partial answer: 2 of 5 subtasks have no result" in answer
    assert "- t2 (failed): Summarise — only this item: beta" in answer
    assert "only this item: alpha" in answer and "only this item: epsilon" in answer


def test_every_sub_agent_failing_is_an_upstream_error(gateway_factory: Callable[..., Gateway]) -> None:
    policy = text_workers(swarm={"planner": "gpt:default", "aggregator": "gpt:default"},
                          retry={"attempts_per_route": 1})
    gw = gateway_factory(policy)
    gw.demo.set_behavior("kimi", error_rate=1.0)
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30,
                          json={"model": "auto:swarm", "messages": user("Summarise: alpha, beta, gamma")})
    assert response.status_code == 502
    assert "Every sub-agent failed" in response.json()["error"]["message"]


# --- the cost ceiling ----------------------------------------------------------------------------
def _dry_run(gw: Gateway, body: dict[str, Any], ceiling: float | None = None) -> dict[str, Any]:
    extra = {"router": {"max_cost_usd": ceiling}} if ceiling else {}
    response = httpx.post(f"{gw.base_url}/route", json={**body, **extra}, timeout=30)
    response.raise_for_status()
    swarm = next(c for c in response.json()["candidates"] if c["route"] == "swarm")
    return dict(swarm)


def test_a_ceiling_for_about_five_agents_runs_no_more_and_holds(gateway_factory: Callable[..., Gateway]) -> None:
    gw = slow_gateway(gateway_factory, ms=20)  # no per-token pacing: the long merged answer comes at once
    body = {"model": "auto:swarm", "messages": user(THIRTY)}
    # The dry run's cost is linear in the agents: two points give the price of one agent.
    full = _dry_run(gw, body)
    wanted = full["swarm_agents"]  # the classifier's estimate of the subtasks
    assert wanted >= 10
    half = _dry_run(gw, body, full["estimated_cost_usd"] / 2)
    per_agent = (full["estimated_cost_usd"] - half["estimated_cost_usd"]) / (wanted - half["swarm_agents"])
    fixed = full["estimated_cost_usd"] - wanted * per_agent
    ceiling = fixed + 5.5 * per_agent
    assert _dry_run(gw, body, ceiling)["swarm_agents"] == 5

    completion = gw.client().chat.completions.create(**body, extra_body={"router": {"max_cost_usd": ceiling}})
    router = router_of(completion)
    swarm = router["swarm"]
    assert 1 <= swarm["agents_run"] <= 10, swarm  # ~5: the run re-prices with the actual plan
    assert swarm["fanout"]["binding"] == "cost"
    assert swarm["cost_usd"] <= ceiling and router["cost_usd"] <= ceiling
    skipped = [f for f in swarm["failed"] if f["status"] == "skipped"]
    assert len(skipped) == 30 - swarm["agents_run"]
    assert all(f["reason"].startswith("budget") for f in skipped)
    assert gw.demo.stats("kimi")["by_role"]["worker"] == swarm["agents_run"]
    assert f"{len(skipped)} of 30 subtasks have no result" in (completion.choices[0].message.content or "")


def test_a_ceiling_too_small_for_any_swarm_is_rejected(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.base_url}/chat/completions", timeout=30,
                          json={"model": "auto:swarm", "messages": user(THIRTY),
                                "router": {"max_cost_usd": 0.0001}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "route_infeasible"


# --- disconnects ---------------------------------------------------------------------------------
def _wait(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_client_disconnect_cancels_every_sub_agent(gateway_factory: Callable[..., Gateway]) -> None:
    gw = slow_gateway(gateway_factory, ms=1500)
    ten = "Summarise each: " + ", ".join(f"topic{i}" for i in range(1, 11))
    payload = orjson.dumps({"model": "auto:swarm", "messages": user(ten)})
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        _wait(lambda: gw.demo.stats("kimi")["in_flight"] == 10)  # the planner is done, 10 workers are running
    _wait(lambda: gw.demo.stats("kimi")["in_flight"] == 0, timeout=1.0)  # well before they would finish
    stats = gw.demo.stats("kimi")
    assert stats["cancelled"] == 10 and stats["completed"] == 1  # only the planner finished
    assert "aggregator" not in stats["by_role"]


def test_stream_disconnect_cancels_every_sub_agent(gateway_factory: Callable[..., Gateway]) -> None:
    gw = slow_gateway(gateway_factory, ms=1500)
    ten = "Summarise each: " + ", ".join(f"topic{i}" for i in range(1, 11))
    body = {"model": "auto:swarm", "messages": user(ten), "stream": True}
    with httpx.Client(timeout=30) as http, http.stream("POST", f"{gw.base_url}/chat/completions", json=body) as r:
        lines = r.iter_lines()  # kept referenced: closing this iterator would close the response
        for line in lines:
            if "plan: 10 subtask" in line:
                break
        _wait(lambda: gw.demo.stats("kimi")["in_flight"] == 10)  # the workers are running; now hang up
    _wait(lambda: gw.demo.stats("kimi")["in_flight"] == 0, timeout=1.0)
    stats = gw.demo.stats("kimi")
    assert stats["cancelled"] == 10 and "aggregator" not in stats["by_role"]


# --- auto: wide work goes to the swarm, narrow work does not ----------------------------------
WIDE = ("Research each of the following companies and summarise their latest annual report: "
        "Apple, Microsoft, Google, Amazon, Meta, Nvidia, Tesla, Netflix")


def test_forced_decomposable_goes_to_swarm(gateway: Gateway) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="auto", messages=user(WIDE), extra_headers={"X-Router-Task-Type": "decomposable"})
    assert raw.headers["x-router-route"] == "swarm"
    assert router_of(raw.parse())["swarm"]["agents_run"] == 8


def test_auto_sends_a_wide_task_to_swarm_and_a_narrow_one_elsewhere(gateway: Gateway) -> None:
    client = gateway.client()
    wide = client.chat.completions.with_raw_response.create(model="auto", messages=user(WIDE))
    assert wide.headers["x-router-task-type"] == "decomposable"
    assert wide.headers["x-router-route"] == "swarm"
    narrow = client.chat.completions.with_raw_response.create(
        model="auto", messages=user("What is the capital of France?"))
    assert narrow.headers["x-router-route"] != "swarm"


def test_dry_run_shows_the_planned_fan_out(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.base_url}/route", json={"model": "auto:swarm", "messages": user(THIRTY)})
    explained = response.json()
    assert explained["choice"] == "swarm"
    assert explained["swarm"]["agents_planned"] >= 1
    swarm = next(c for c in explained["candidates"] if c["route"] == "swarm")
    assert any("wave(s) of up to 32" in note for note in swarm["notes"])


def test_a_streamed_swarm_answer_can_be_a_client_tool_call(gateway: Gateway) -> None:
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}
    stream = gateway.client().chat.completions.create(
        model="auto:swarm", messages=user("Summarise: alpha, beta, gamma"), tools=[lookup],  # type: ignore[list-item]
        tool_choice="required", stream=True)
    chunks = [chunk for chunk in stream if chunk.choices]
    calls = [c for chunk in chunks for c in (chunk.choices[0].delta.tool_calls or [])]
    assert [c.function.name for c in calls if c.function] == ["lookup"] and calls[0].index == 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
