"""Server-sent events with a name line, the framing both Anthropic and the Responses API use.

``event: <name>\\ndata: <json>\\n\\n`` — the name repeats the payload's ``type`` (both vendors do so).
"""

from __future__ import annotations

from typing import Any

import orjson


def named_event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
