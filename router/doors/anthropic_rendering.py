"""Chat Completions answers and stream chunks rendered as Anthropic ``Message`` objects and SSE events.

References (Anthropic's published API):
- ``Message``: https://docs.claude.com/en/api/messages
- stream events: https://platform.claude.com/docs/en/build-with-claude/streaming — ``message_start``,
  then per content block ``content_block_start`` / ``content_block_delta``* / ``content_block_stop``,
  then ``message_delta`` (stop_reason, cumulative usage) and ``message_stop``; ``ping`` anywhere;
  an ``error`` event when a stream fails after the 200.

``reasoning_content`` (Kimi's thinking, the swarm's progress) becomes ``thinking`` blocks.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from router import sse
from router.doors.anthropic_messages import ROUTER_SIGNATURE_PREFIX, error_object

# --- message --------------------------------------------------------------------------------

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "function_call": "tool_use", "content_filter": "refusal"}
def thinking_signature(thinking: str) -> str:
    """A ``signature`` for thinking the router relayed from a non-Claude model.

    Anthropic's signatures are Claude's own and cannot be forged; ours is marked
    (``is_router_signature``) so ``claude_passthrough_body`` drops such blocks before a request
    goes to Claude, which would reject them.
    """
    return ROUTER_SIGNATURE_PREFIX + hashlib.sha256(thinking.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _stop_reason(finish_reason: Any) -> str:
    return _STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def _matched_stop(choice: dict[str, Any], stop_sequences: list[str] | None) -> str | None:
    # vLLM reports the matched stop string as ``stop_reason`` on the choice; others say nothing.
    matched = choice.get("stop_reason")
    return matched if isinstance(matched, str) and stop_sequences and matched in stop_sequences else None


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    # Anthropic's input is always an object; keep what the model said rather than lose it.
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    out = {"input_tokens": max(0, prompt - cached), "output_tokens": int(usage.get("completion_tokens") or 0)}
    if cached:
        # Anthropic counts cache reads apart from input_tokens (their sum is the prompt).
        out["cache_read_input_tokens"] = cached
    return out


def message_id(chat_id: Any = None) -> str:
    if isinstance(chat_id, str) and chat_id:
        return "msg_" + chat_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def from_chat_response(chat_response: dict[str, Any], *, model: str, stop_sequences: list[str] | None = None,
                       router: dict[str, Any] | None = None, omit_thinking: bool = False) -> dict[str, Any]:
    """A Chat Completions answer as an Anthropic ``Message``, with the ``router`` object (the
    argument, else the answer's own ``router`` field) as an extra top-level field.

    ``omit_thinking`` (the request's ``thinking.display: "omitted"``): thinking blocks keep their
    signature and lose their text, as Anthropic does.
    """
    choices = chat_response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": "" if omit_thinking else reasoning,
                        "signature": thinking_signature(reasoning)})
    text = _text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex,
                        "name": function.get("name", ""), "input": _tool_input(function.get("arguments"))})
    matched = _matched_stop(choice, stop_sequences)
    out: dict[str, Any] = {
        "id": message_id(chat_response.get("id")), "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": "stop_sequence" if matched else _stop_reason(choice.get("finish_reason")),
        "stop_sequence": matched, "usage": _usage(chat_response.get("usage")),
    }
    router = router if router is not None else chat_response.get("router")
    if router is not None:
        out["router"] = router
    return out


# --- stream ----------------------------------------------------------------------------------


class MessagesStreamRenderer:
    """Chat stream chunks in, Anthropic SSE bytes out, in the published order.

    Call ``start()`` once, ``feed(chunk)`` per chat chunk, then ``finish()`` — or ``error()`` if the
    stream fails after the 200. One content block is open at a time: a change of kind (thinking,
    text, a new tool call) closes the open block and starts the next index.
    """

    def __init__(self, *, model: str, message_id: str | None = None, input_tokens: int = 0,
                 stop_sequences: list[str] | None = None, omit_thinking: bool = False) -> None:
        self.model = model
        self.message_id = message_id or "msg_" + uuid.uuid4().hex
        self.input_tokens = input_tokens  # an estimate until the final usage arrives
        self.stop_sequences = stop_sequences
        self.omit_thinking = omit_thinking  # thinking.display "omitted": no thinking_delta, the signature only
        self._index = -1  # index of the open block; -1 before the first
        self._open: str | None = None  # "thinking" | "text" | "tool_use"
        self._thinking: list[str] = []
        self._tool_blocks: dict[int, int] = {}  # chat tool-call index → block index
        self._stop_reason = "end_turn"
        self._stop_sequence: str | None = None
        self._usage: dict[str, int] | None = None
        self._router: Any = None
        self._started = False
        self._done = False

    def start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}
        return (sse.event("message_start", {"type": "message_start", "message": message})
                + self.ping())

    @staticmethod
    def ping() -> bytes:
        return sse.event("ping", {"type": "ping"})

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = [] if self._started else [self.start()]
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        if "router" in chunk:
            self._router = chunk["router"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out.append(self._to("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
                self._thinking.append(reasoning)
                if not self.omit_thinking:
                    out.append(self._delta({"type": "thinking_delta", "thinking": reasoning}))
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._to("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_call(call))
            if choice.get("finish_reason"):
                matched = _matched_stop(choice, self.stop_sequences)
                self._stop_reason = "stop_sequence" if matched else _stop_reason(choice["finish_reason"])
                self._stop_sequence = matched
        return b"".join(out)

    def finish(self, *, usage: dict[str, Any] | None = None, router: dict[str, Any] | None = None) -> bytes:
        """Close the open block, then ``message_delta`` and ``message_stop``.

        ``usage`` (OpenAI's usage object) and ``router`` are for a pipeline that collects them
        apart from the chunks; either may also have come on a chunk.
        """
        if self._done:
            return b""
        if usage is not None:
            self._usage = _usage(usage)
        if router is not None:
            self._router = router
        out = [] if self._started else [self.start()]
        out.append(self._close())
        self._done = True
        usage = self._usage or {"output_tokens": 0}
        delta_event: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason, "stop_sequence": self._stop_sequence},
            "usage": usage,  # cumulative totals: the SDK overwrites message_start's numbers with them
        }
        if self._router is not None:
            delta_event["router"] = self._router
        out.append(sse.event("message_delta", delta_event))
        out.append(sse.event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, status: int, message: str) -> bytes:
        """The ``error`` event for a failure after the stream started; nothing follows it."""
        self._done = True
        out = b"" if self._started else self.start()
        return out + sse.event("error", error_object(status, message))

    # --- blocks ---
    def _to(self, kind: str, block: dict[str, Any], *, new: bool = False) -> bytes:
        """Start a block of ``kind`` unless one is open (``new``: start one anyway, for each tool call)."""
        if self._open == kind and not new:
            return b""
        closed = self._close()
        self._index += 1
        self._open = kind
        return closed + sse.event("content_block_start",
                                    {"type": "content_block_start", "index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        return sse.event("content_block_delta", {"type": "content_block_delta",
                                                   "index": self._index if index is None else index,
                                                   "delta": delta})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._open == "thinking":
            # Anthropic sends the block's signature as its last delta.
            signature = thinking_signature("".join(self._thinking))
            out = self._delta({"type": "signature_delta", "signature": signature})
            self._thinking.clear()
        self._open = None
        return out + sse.event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        chat_index = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        block = self._tool_blocks.get(chat_index)
        if block is None:  # the first delta of a tool call names it
            out += self._to("tool_use", {"type": "tool_use", "id": call.get("id") or "toolu_" + uuid.uuid4().hex,
                                         "name": function.get("name") or "", "input": {}}, new=True)
            block = self._tool_blocks[chat_index] = self._index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments}, block)
        return out


# --- Claude's own answer, passed through -------------------------------------------------------
# A /v1/messages request that a route answered natively (dispatch/anthropic.py) comes back as
# Claude's ``Message`` / events: everything in them is the client's protocol already (content blocks
# with citations and signatures, tool_use ids, stop_sequence, usage with the cache counts), so they
# go out as they came, with the ``router`` object added as on every other answer.


def relayed_message(message: dict[str, Any], *, model: str, router: dict[str, Any] | None) -> dict[str, Any]:
    """Claude's ``Message`` for the client: as it came, plus ``router`` (and ``model`` if it had none)."""
    out = dict(message)
    if not out.get("model"):
        out["model"] = model
    if router is not None:
        out["router"] = router
    return out


class MessagesEventRelay:
    """Claude's stream events out as they came, in order; ``message_delta`` and ``message_stop`` are
    held until ``finish`` so that ``message_delta`` can carry the ``router`` object (its cost is
    known only once the stream ended). Same calls as ``MessagesStreamRenderer``."""

    __slots__ = ("_delta", "_model", "_stop")

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._delta: dict[str, Any] | None = None
        self._stop: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> bytes:
        kind = str(event.get("type"))
        if kind == "message_delta":
            self._delta = event
            return b""
        if kind == "message_stop":
            self._stop = event
            return b""
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict) and not message.get("model"):
                message["model"] = self._model
        return sse.event(kind, event)

    def finish(self, *, usage: dict[str, Any] | None = None, router: dict[str, Any] | None = None) -> bytes:
        """``message_delta`` (with ``router``) and ``message_stop``; ``usage`` is the upstream's own already."""
        delta = self._delta if self._delta is not None else {
            "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 0}}
        if router is not None:
            delta["router"] = router
        return (sse.event("message_delta", delta)
                + sse.event("message_stop", self._stop if self._stop is not None else {"type": "message_stop"}))

    @staticmethod
    def error(status: int, message: str) -> bytes:
        """The gateway's ``error`` event when the upstream failed after the stream started."""
        return sse.event("error", error_object(status, message))


# --- models ----------------------------------------------------------------------------------

# No real release date exists for a route or an alias; a fixed epoch keeps the list stable.
_MODELS_CREATED_AT = "1970-01-01T00:00:00Z"


def models_page(model_ids: list[str]) -> dict[str, Any]:
    """``GET /v1/models`` in Anthropic's shape (https://docs.claude.com/en/api/models-list), one page."""
    data = [{"type": "model", "id": model_id, "display_name": model_id, "created_at": _MODELS_CREATED_AT,
             "lifecycle": "active"} for model_id in model_ids]
    return {"data": data, "has_more": False, "first_id": model_ids[0] if model_ids else None,
            "last_id": model_ids[-1] if model_ids else None}
