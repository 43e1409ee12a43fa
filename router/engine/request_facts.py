"""Facts about a chat request that routing needs, extracted once, cheaply, from the raw body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.engine.anthropic_tools import anthropic_tools

# Rough token cost of one image / video part as an input (providers charge ~1-2k for an image).
IMAGE_TOKENS = 1_500
VIDEO_TOKENS = 8_000
# Chat templates wrap every message in a few tokens of role markers.
MESSAGE_OVERHEAD_TOKENS = 8


@dataclass(frozen=True, slots=True)
class RequestFacts:
    text_chars: int
    text_bytes: int
    images: int
    videos: int
    has_tools: bool
    max_output_tokens: int | None  # what the client asked for, if anything
    stream: bool
    messages: int = 1
    # Anthropic-defined tools (engine/anthropic_tools.py): only Claude routes serve them
    anthropic_tools: tuple[str, ...] = ()

    @property
    def input_tokens(self) -> int:
        """Expected prompt tokens: ~4 characters per token, plus media."""
        return self.text_chars // 4 + 1 + self.images * IMAGE_TOKENS + self.videos * VIDEO_TOKENS

    @property
    def input_tokens_upper(self) -> int:
        """A safe upper bound (one token per 3 UTF-8 bytes covers CJK text) used to cap spend."""
        return (self.text_bytes // 3 + 16 + self.messages * MESSAGE_OVERHEAD_TOKENS
                + self.images * IMAGE_TOKENS * 2 + self.videos * VIDEO_TOKENS * 2)

    @property
    def modalities(self) -> frozenset[str]:
        kinds = {"text"}
        if self.images:
            kinds.add("image")
        if self.videos:
            kinds.add("video")
        return frozenset(kinds)


def _utf8_len(text: str) -> int:
    # isascii() is O(1) in CPython: most prompts never pay for an encoded copy.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def extract_facts(body: dict[str, Any]) -> RequestFacts:
    """Counts text (tool definitions and earlier tool calls included: they are prompt tokens too)."""
    chars = 0
    nbytes = 0
    images = 0
    videos = 0
    messages = body.get("messages") or ()
    tools = body.get("tools") or body.get("functions")  # `functions`: the legacy name, still sent
    native_tools: tuple[str, ...] = ()
    if tools:
        native_tools = anthropic_tools(tools) if isinstance(tools, list) else ()
        raw = orjson.dumps(tools)
        chars += len(raw)  # JSON schemas are ASCII in practice; bytes bound chars anyway
        nbytes += len(raw)
    for message in messages:
        if not isinstance(message, dict):
            continue
        calls = message.get("tool_calls")
        if calls:
            raw = orjson.dumps(calls)
            chars += len(raw)
            nbytes += len(raw)
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
            nbytes += _utf8_len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    chars += len(part["text"])
                    nbytes += _utf8_len(part["text"])
                elif kind == "image_url":
                    images += 1
                elif kind == "video_url":
                    videos += 1
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return RequestFacts(
        text_chars=chars, text_bytes=nbytes, images=images, videos=videos,
        has_tools=bool(tools),
        max_output_tokens=limit if isinstance(limit, int) and limit > 0 else None,
        stream=bool(body.get("stream")),
        messages=len(messages) if isinstance(messages, list) else 1,
        anthropic_tools=native_tools,
    )
