"""Server-sent events in OpenAI's framing: ``data: {json}\\n\\n`` frames, then ``data: [DONE]\\n\\n``.

The last frame before ``[DONE]`` carries the ``router`` object (and ``usage`` when the client asked
for it with ``stream_options.include_usage``), with no choices — the shape OpenAI uses for usage.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.dispatch.upstream import Usage

DONE = b"data: [DONE]\n\n"


def frame(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def final_frame(*, chunk_id: Any, created: Any, model: Any, router: dict[str, Any],
                usage: Usage | None) -> bytes:
    """The closing chunk: no choices, the router object, and usage if requested (else None)."""
    final: dict[str, Any] = {"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                             "model": model, "choices": [], "router": router}
    if usage is not None:
        final["usage"] = usage.as_openai()
    return frame(final)
