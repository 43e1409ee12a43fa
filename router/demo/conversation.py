"""One provider-neutral view of a chat request, read from OpenAI or Anthropic message lists.

The answer generator only needs a few facts: the system text, the last user turn, how many images
and videos it carries, whether the conversation ends with a tool result, and the prompt size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_IMAGE_TOKENS = 256  # rough per-image prompt cost, so vision prompts are not priced as empty


@dataclass(frozen=True, slots=True)
class ToolResult:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str
    last_user: str  # text of the last user turn that is not only a tool result
    user_turns: tuple[str, ...]  # text of every user turn, in order
    images: int  # in the last user turn
    videos: int
    tool_result: ToolResult | None  # set when the conversation ends with a tool result
    transcript: str  # every text, joined: markers (DEMO_*) are searched here
    prompt_tokens: int

    @property
    def swarm_role(self) -> str | None:
        """`planner` / `worker` / `aggregator` when the system prompt says so."""
        for role in ("planner", "worker", "aggregator"):
            if f"model-router swarm {role}" in self.system:
                return role
        return None


def _prompt_tokens(chars: int, media: int) -> int:
    return max(1, chars // 4) + _IMAGE_TOKENS * media


def _text_of(content: Any) -> str:
    """Text of an OpenAI or Anthropic `content` (a string or a list of parts/blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text") and isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif kind == "tool_result":
                    parts.append(_text_of(part.get("content")))
        return "\n".join(p for p in parts if p)
    return ""


def _count_media(content: Any) -> tuple[int, int]:
    images = videos = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                if kind in ("image_url", "image", "input_image"):
                    images += 1
                elif kind in ("video_url", "video"):
                    videos += 1
    return images, videos


def from_openai(messages: list[dict[str, Any]], tools: Iterable[Any] = ()) -> Conversation:
    system: list[str] = []
    texts: list[str] = []
    last_user = ""
    user_turns: list[str] = []
    images = videos = 0
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, to name a tool result
    for message in messages:
        role = message.get("role")
        text = _text_of(message.get("content"))
        texts.append(text)
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            last_user = text
            user_turns.append(text)
            images, videos = _count_media(message.get("content"))
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict):
                    function = call.get("function") or {}
                    tool_names[str(call.get("id"))] = str(function.get("name", "the tool"))
                    texts.append(str(function.get("arguments", "")))
    tool_result = None
    last = messages[-1] if messages else {}
    if last.get("role") in ("tool", "function"):
        name = tool_names.get(str(last.get("tool_call_id")), str(last.get("name") or "the tool"))
        tool_result = ToolResult(name=name, text=_text_of(last.get("content")))
    transcript = "\n".join(texts)
    tool_chars = sum(len(str(t)) for t in tools)
    return Conversation(
        system="\n".join(system),
        last_user=last_user,
        user_turns=tuple(user_turns),
        images=images,
        videos=videos,
        tool_result=tool_result,
        transcript=transcript,
        prompt_tokens=_prompt_tokens(len(transcript) + tool_chars, images + videos),
    )


def from_anthropic(system: Any, messages: list[dict[str, Any]], tools: Iterable[Any] = ()) -> Conversation:
    system_text = _text_of(system)
    texts = [system_text]
    last_user = ""
    user_turns: list[str] = []
    images = videos = 0
    tool_names: dict[str, str] = {}
    tool_result = None
    for message in messages:
        content = message.get("content")
        texts.append(_text_of(content))
        blocks = content if isinstance(content, list) else []
        if message.get("role") == "assistant":
            for block in blocks:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    tool_names[str(block.get("id"))] = str(block.get("name", "the tool"))
                    texts.append(str(block.get("input", "")))
            tool_result = None
            continue
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            block = results[-1]
            tool_result = ToolResult(
                name=tool_names.get(str(block.get("tool_use_id")), "the tool"),
                text=_text_of(block.get("content")),
            )
        else:
            tool_result = None
            last_user = _text_of(content)
            user_turns.append(last_user)
            images, videos = _count_media(content)
    transcript = "\n".join(texts)
    tool_chars = sum(len(str(t)) for t in tools)
    return Conversation(
        system=system_text,
        last_user=last_user,
        user_turns=tuple(user_turns),
        images=images,
        videos=videos,
        tool_result=tool_result,
        transcript=transcript,
        prompt_tokens=_prompt_tokens(len(transcript) + tool_chars, images + videos),
    )
