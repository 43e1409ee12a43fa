"""Answers and chunks from every path validate against OpenAI's published schema.

Paths: the relay (Kimi on vLLM, GPT), the native Anthropic client (Claude), litellm (a
``provider: litellm`` backend in front of the Anthropic demo) and swarm; each as JSON and as a
stream, plain, with tools and with structured output, with and without ``include_usage``. The
schema is a pinned copy of the spec's
``CreateChatCompletionResponse`` / ``CreateChatCompletionStreamResponse`` definitions
(tests/support/openai_chat_schema.json, API version 2.3.0). For streams the spec also says when a
chunk may have no choices: only the last one, when ``stream_options.include_usage`` asked for usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.conftest import Gateway, default_policy, start_gateway

SPEC = json.loads((Path(__file__).parent / "support" / "openai_chat_schema.json").read_text())
RESPONSE = Draft202012Validator({"$ref": "#/$defs/CreateChatCompletionResponse", "$defs": SPEC["$defs"]})
CHUNK = Draft202012Validator({"$ref": "#/$defs/CreateChatCompletionStreamResponse", "$defs": SPEC["$defs"]})

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CITY = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["name", "population", "landmarks"],
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"},
                   "landmarks": {"type": "array", "items": {"type": "string"}}}}}}
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"messages": [{"role": "user", "content": "Explain how TCP slow start works"}]},
    "tools": {"messages": [{"role": "user", "content": "What's the weather in Paris?"}], "tools": [WEATHER]},
    "structured": {"messages": [{"role": "user", "content": "Describe Lima as a city record"}],
                   "response_format": CITY},
}
SWARM_PROMPT = ("Compare these 6 databases on cost, latency and recall: Pinecone, Weaviate, Milvus, Qdrant, "
                "Chroma, pgvector")
ROUTES = ["kimi:instant", "kimi:thinking", "gpt:default", "claude:default", "claude-litellm:default", "swarm"]


@pytest.fixture(scope="module")
def gw(session_demo: Any, classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The packaged policy plus a litellm-translated backend in front of the Anthropic demo."""
    policy = default_policy(backends={"claude-litellm": {
        "provider": "litellm", "model": "anthropic/claude-sonnet-4-5", "api_base": "${ANTHROPIC_API_BASE}",
        "api_key_env": "ANTHROPIC_API_KEY", "pricing": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
        "context_window": 200000, "max_output_tokens": 64000, "modalities": ["text", "image"]}})
    gateway = start_gateway(session_demo, policy, Path(tmp_path_factory.mktemp("schema")), classifier=classifier)
    yield gateway
    gateway.stop()


def _request(route: str, variant: str) -> dict[str, Any]:
    body = {"model": route, **VARIANTS[variant]}
    if route == "swarm":
        body["messages"] = [{"role": "user", "content": SWARM_PROMPT}]
    return body


def _errors(validator: Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def _cases() -> Iterator[Any]:
    for route in ROUTES:
        for variant in VARIANTS:
            if route == "swarm" and variant == "tools":
                continue  # swarm refuses tools (a documented 400)
            yield pytest.param(route, variant, id=f"{route}-{variant}")


@pytest.mark.parametrize(("route", "variant"), list(_cases()))
def test_json_answers_match_the_response_schema(gw: Gateway, route: str, variant: str) -> None:
    with httpx.Client(timeout=60) as http:
        r = http.post(f"{gw.base_url}/chat/completions", json=_request(route, variant))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert _errors(RESPONSE, answer) == []
    message = answer["choices"][0]["message"]
    if variant == "tools" and answer["choices"][0]["finish_reason"] == "tool_calls":
        assert "content" in message and message["tool_calls"]
    if variant == "structured":
        city = json.loads(message["content"])
        assert isinstance(city["name"], str) and isinstance(city["population"], int)


def _chunks(gw: Gateway, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.Client(timeout=60) as http, http.stream("POST", f"{gw.base_url}/chat/completions",
                                                       json={**body, "stream": True}) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    return [json.loads(e[6:]) for e in events[:-1]]


def _stream_errors(chunks: list[dict[str, Any]], include_usage: bool) -> list[str]:
    problems = [f"chunk {i}: {p}" for i, chunk in enumerate(chunks) for p in _errors(CHUNK, chunk)]
    for i, chunk in enumerate(chunks):
        if not chunk["choices"] and not (include_usage and i == len(chunks) - 1 and chunk.get("usage")):
            problems.append(f"chunk {i}: no choices, but only the include_usage chunk (the last) may have none")
    finishes = [c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
    if len(finishes) != 1:
        problems.append(f"{len(finishes)} chunks carry a finish_reason (one expected)")
    usages = [c for c in chunks if c.get("usage")]
    if include_usage and len(usages) != 1:
        problems.append(f"usage arrived {len(usages)} times (once expected)")
    return problems


@pytest.mark.parametrize(("route", "variant"), list(_cases()))
def test_stream_chunks_match_the_chunk_schema_with_include_usage(gw: Gateway, route: str, variant: str) -> None:
    body = {**_request(route, variant), "stream_options": {"include_usage": True}}
    assert _stream_errors(_chunks(gw, body), include_usage=True) == []


@pytest.mark.parametrize("route", ROUTES)
def test_stream_without_include_usage_has_no_empty_choices_chunk(gw: Gateway, route: str) -> None:
    assert _stream_errors(_chunks(gw, _request(route, "plain")), include_usage=False) == []
