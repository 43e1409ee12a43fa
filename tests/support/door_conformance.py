"""Strict checks that rendered objects and SSE streams are what the official SDKs publish.

For the doors' unit tests and for end-to-end tests over HTTP alike:

    anthropic_stream(body_bytes)   # every event parses as anthropic.types.RawMessageStreamEvent (or
                                   # ErrorResponse for `error`), published order, block indices
    responses_stream(body_bytes)   # every event parses as openai.types.responses.ResponseStreamEvent,
                                   # sequence numbers, item order, one terminal event
    assert_strict(model, raw)      # no fallback parse, no unknown field anywhere in the tree

"Strict" means: the SDK class that parsed a dict is the one its ``type`` names, and no field outside
the SDK's model is present except the ``router`` object we add on purpose (issue 13).
"""

from __future__ import annotations

from typing import Any

import orjson
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

ANTHROPIC_EVENT = TypeAdapter(RawMessageStreamEvent)
ANTHROPIC_MESSAGE = TypeAdapter(Message)
ANTHROPIC_ERROR = TypeAdapter(ErrorResponse)
RESPONSES_EVENT = TypeAdapter(ResponseStreamEvent)
RESPONSE = TypeAdapter(Response)
ALLOWED_EXTRAS = frozenset({"router"})
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def assert_strict(model: BaseModel, raw: dict[str, Any]) -> None:
    """No fallback parse: ``type`` names the class that parsed it, and no unknown fields anywhere."""
    if isinstance(raw.get("type"), str) and "type" in type(model).model_fields:
        assert model.type == raw["type"]  # type: ignore[attr-defined]
    extra = set(model.model_extra or {}) - ALLOWED_EXTRAS
    assert not extra, f"{type(model).__name__} carries unknown fields {extra}"
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        raw_value = raw.get(field.alias or name)
        children = value if isinstance(value, list) else [value]
        raw_children = raw_value if isinstance(raw_value, list) else [raw_value]
        for child, raw_child in zip(children, raw_children, strict=False):
            if isinstance(child, BaseModel) and isinstance(raw_child, dict):
                assert_strict(child, raw_child)


def parse_named_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, payload) per ``event:``/``data:`` frame; the name must repeat the payload's type."""
    assert data.endswith(b"\n\n"), "a stream ends with a complete frame"
    frames = []
    for frame in data.split(b"\n\n")[:-1]:
        name_line, data_line = frame.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: "), frame
        name, payload = name_line[7:].decode(), orjson.loads(data_line[6:])
        assert payload["type"] == name
        frames.append((name, payload))
    return frames


def anthropic_stream(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Anthropic's published sequence: message_start, blocks (start, deltas, stop; one open at a time,
    indices from 0), message_delta, message_stop; ping anywhere; an ``error`` event ends the stream."""
    frames = parse_named_sse(data)
    names = [name for name, _ in frames]
    assert names[0] == "message_start"
    open_index: int | None = None
    next_index = 0
    for name, payload in frames:
        if name == "ping":
            continue
        if name == "error":
            assert_strict(ANTHROPIC_ERROR.validate_python(payload), payload)
            assert (name, payload) == frames[-1], "nothing follows an error event"
            continue
        assert_strict(ANTHROPIC_EVENT.validate_python(payload), payload)
        if name == "content_block_start":
            assert open_index is None and payload["index"] == next_index
            open_index, next_index = payload["index"], next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            assert payload["index"] == open_index
            if name == "content_block_stop":
                open_index = None
        elif name in ("message_delta", "message_stop"):
            assert open_index is None
    if "error" not in names:
        assert names[-2:] == ["message_delta", "message_stop"]
    return frames


def responses_stream(data: bytes) -> list[dict[str, Any]]:
    """The Responses sequence: created, in_progress, items (added … done, one open at a time, output
    indices from 0), exactly one terminal event last; sequence numbers 0, 1, 2, …"""
    events = [payload for _, payload in parse_named_sse(data)]
    for n, event in enumerate(events):
        assert event["sequence_number"] == n
        assert_strict(RESPONSES_EVENT.validate_python(event), event)
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] in TERMINAL
    assert all(e["type"] not in TERMINAL for e in events[:-1])
    open_index: int | None = None
    next_index = 0
    for event in events[2:-1]:
        if event["type"] == "response.output_item.added":
            assert open_index is None and event["output_index"] == next_index
            open_index, next_index = next_index, next_index + 1
        elif event["type"] == "response.output_item.done":
            assert event["output_index"] == open_index
            open_index = None
        elif "output_index" in event:
            assert event["output_index"] == open_index
    if events[-1]["type"] != "response.failed":
        assert open_index is None
        assert len(events[-1]["response"]["output"]) == next_index
    return events
