"""A `Reply` cut to the request's token budget and stop sequences, ready to be sent.

Like vLLM, `max_tokens` covers reasoning and content together: a thinking model that spends the whole
budget on reasoning returns empty content with `finish_reason: "length"`.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.demo.answers import Reply, ToolCall, pieces


@dataclass(frozen=True, slots=True)
class Completion:
    reasoning: list[str]  # pieces; one piece is one token
    content: list[str]
    tool_call: ToolCall | None
    finish_reason: str  # stop | length | tool_calls
    stop_sequence: str | None = None  # the stop string that ended the content, if any

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def content_text(self) -> str:
        return "".join(self.content)

    @property
    def tool_tokens(self) -> int:
        return max(1, len(self.tool_call.arguments) // 4) if self.tool_call else 0

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + self.tool_tokens


def finish(reply: Reply, *, max_tokens: int | None, stop: list[str]) -> Completion:
    content_text = reply.content
    stop_hit = None
    for candidate in stop:
        at = content_text.find(candidate) if candidate else -1
        if at >= 0 and (stop_hit is None or at < content_text.find(stop_hit)):
            stop_hit = candidate
    if stop_hit is not None:
        content_text = content_text[: content_text.find(stop_hit)]
    reasoning = pieces(reply.reasoning or "")
    content = pieces(content_text)
    budget = max_tokens if max_tokens is not None else 1 << 30
    if len(reasoning) >= budget and (content or reply.tool_call):
        return Completion(reasoning[:budget], [], None, "length")
    budget -= len(reasoning)
    if reply.tool_call is not None:
        call_tokens = max(1, len(reply.tool_call.arguments) // 4)
        if call_tokens > budget:
            return Completion(reasoning, [], None, "length")
        return Completion(reasoning, content, reply.tool_call, "tool_calls")
    if len(content) > budget:
        return Completion(reasoning, content[:budget], None, "length")
    return Completion(reasoning, content, None, "stop", stop_hit)
