"""CPU cost of the Anthropic Messages and Responses doors' conversions, against the chat door's floor.

    .venv/bin/python benchmarks/bench_doors.py [--rounds N]

Per request, single thread: parse the client's body and convert it to the chat shape, then render a
chat answer back and serialise it. The floor is what the chat door itself does with the same
conversation (parse the chat body, serialise the chat answer), so the ratio is the doors' added
work. Two request sizes: a short chat turn, and a coding agent's turn (long system prompt, 12
tools, 24 earlier messages with tool calls and results). Streams: CPU per relayed chunk for a text
delta (the chat door frames ``data: {json}``). Prints p50 / p99 in microseconds. Not covered:
network, the pipeline, the upstream — this is the converters' share of the added latency only.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from router.doors import anthropic_messages, openai_responses
from router.doors.anthropic_rendering import MessagesStreamRenderer
from router.doors.anthropic_rendering import from_chat_response as to_message
from router.doors.responses_rendering import ResponsesStreamRenderer
from router.doors.responses_rendering import from_chat_response as to_response

SYSTEM = "You are a careful coding agent. Follow the repository's conventions. " * 30
TOOLS = [{"name": f"tool_{i}", "description": "Does one thing well. " * 4,
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "n": {"type": "integer"}},
                           "required": ["path"]}} for i in range(12)]


def anthropic_agent_body(turns: int) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test in tests/test_x.py."}]
    for i in range(turns):
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": "Let me look at the file. " * 3},
            {"type": "tool_use", "id": f"toolu_{i}", "name": "tool_1", "input": {"path": f"src/m{i}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "def f():\n    return 1\n" * 20}]})
    return {"model": "auto", "max_tokens": 4096, "system": SYSTEM, "tools": TOOLS, "messages": messages}


def responses_agent_body(turns: int) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing test in tests/test_x.py."}]
    for i in range(turns):
        items.append({"type": "message", "role": "assistant", "id": f"msg_{i}", "status": "completed",
                      "content": [{"type": "output_text", "text": "Let me look at the file. " * 3, "annotations": []}]})
        items.append({"type": "function_call", "id": f"fc_{i}", "call_id": f"call_{i}", "name": "tool_1",
                      "arguments": orjson.dumps({"path": f"src/m{i}.py"}).decode()})
        items.append({"type": "function_call_output", "call_id": f"call_{i}",
                      "output": "def f():\n    return 1\n" * 20})
    tools = [{"type": "function", "name": t["name"], "description": t["description"],
              "parameters": t["input_schema"]} for t in TOOLS]
    return {"model": "auto", "instructions": SYSTEM, "tools": tools, "input": items, "max_output_tokens": 4096}


CHAT_ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "kimi",
               "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                   "role": "assistant", "content": "I will run the tests. " * 10,
                   "reasoning_content": "The failure is in the fixture. " * 20,
                   "tool_calls": [{"id": "call_z", "type": "function",
                                   "function": {"name": "tool_2", "arguments": '{"path": "tests/test_x.py"}'}}]}}],
               "usage": {"prompt_tokens": 9000, "completion_tokens": 300, "total_tokens": 9300},
               "router": {"route": "kimi:agent", "mode": "agent", "task_type": "coding"}}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "kimi",
         "choices": [{"index": 0, "delta": {"content": "token "}, "finish_reason": None}]}


def measure(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    for _ in range(min(200, rounds)):
        fn()
    samples = []
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def bench_requests(label: str, turns: int, rounds: int) -> None:
    a_raw = orjson.dumps(anthropic_agent_body(turns))
    r_raw = orjson.dumps(responses_agent_body(turns))
    chat_raw = orjson.dumps(anthropic_messages.to_chat_request(orjson.loads(a_raw)))

    def floor() -> bytes:
        orjson.loads(chat_raw)
        return orjson.dumps(CHAT_ANSWER)

    def anthropic_door() -> bytes:
        body = orjson.loads(a_raw)
        anthropic_messages.to_chat_request(body)
        return orjson.dumps(to_message(CHAT_ANSWER, model="auto"))

    def responses_door() -> bytes:
        body = orjson.loads(r_raw)
        openai_responses.to_chat_request(body)
        return orjson.dumps(to_response(CHAT_ANSWER, request=body, model="auto"))

    base = measure(floor, rounds)[0]
    for name, fn in ((f"chat floor, {label}", floor), (f"/v1/messages, {label}", anthropic_door),
                     (f"/v1/responses, {label}", responses_door)):
        p50, p99 = measure(fn, rounds)
        print(f"{name:<44} {p50:8.1f} {p99:8.1f} {p50 / base:12.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.rounds} rounds; µs per operation")
    print(f"{'case':<44} {'p50':>8} {'p99':>8} {'× floor p50':>12}")
    for label, turns in (("short turn", 0), ("coding agent, 24 tool turns", 12)):
        bench_requests(label, turns, args.rounds)
    anthropic_stream = MessagesStreamRenderer(model="auto")
    anthropic_stream.start()
    responses_stream = ResponsesStreamRenderer(request={"model": "auto", "input": "x"}, model="auto")
    responses_stream.start()
    stream_cases: list[tuple[str, Callable[[], object]]] = [
        ("stream chunk, chat framing (floor)", lambda: b"data: " + orjson.dumps(CHUNK) + b"\n\n"),
        ("stream chunk, /v1/messages", lambda: anthropic_stream.feed(CHUNK)),
        ("stream chunk, /v1/responses", lambda: responses_stream.feed(CHUNK)),
    ]
    base = measure(stream_cases[0][1], args.rounds * 5)[0]
    for name, fn in stream_cases:
        p50, p99 = measure(fn, args.rounds * 5)
        print(f"{name:<44} {p50:8.1f} {p99:8.1f} {p50 / base:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
