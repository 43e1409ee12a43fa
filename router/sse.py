"""Server-sent events framing, shared by every front door: ``data:`` frames, named events, ``[DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def frame(obj: Any) -> bytes:
    """``data: {json}\\n\\n`` — OpenAI's framing (the event type lives inside the JSON)."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def event(name: str, obj: Any) -> bytes:
    """``event: name\\ndata: {json}\\n\\n`` — Anthropic's and the Responses API's framing."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
