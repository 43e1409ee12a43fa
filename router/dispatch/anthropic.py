"""The lean Claude path: OpenAI chat requests to Anthropic's Messages API and back, on the relay's
pool of HTTP/1.1 connections (``http1.Pool``), with orjson. No litellm on the way (~10x less CPU per request).

The body arrives already adapted by the dialect table (``modes.build_request``: temperature in
0-1, not with top_p, ``max_tokens`` set, ``thinking`` with ``budget_tokens``); this module only
changes its shape. Sources: Messages API reference (docs.anthropic.com/en/api/messages) and the
SDK's request/response types (anthropic-sdk-python ``types/message_create_params.py``,
``types/raw_message_stream_event.py``); structured outputs: build-with-claude/structured-outputs
(``output_format`` with the ``structured-outputs-2025-11-13`` beta header).

A request that came through the ``/v1/messages`` door is not translated at all: the client's own
Messages body (``UpstreamCall.native``, built by ``passthrough_body``) goes to Claude with only what
the route must change, and Claude's ``Message`` / stream events come back as they are; the pipeline
reads usage and the first token straight off them (``usage_after_event``, ``event_has_payload``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from router.dispatch.dialects import ANTHROPIC_MIN_THINKING_BUDGET
from router.dispatch.http1 import Http1Error
from router.dispatch.modes import build_request
from router.dispatch.relay import OpenAIRelay, RelayStream
from router.dispatch.upstream import (
    NativeRequest,
    UpstreamCall,
    UpstreamError,
    Usage,
    error_message_from_body,
    status_error,
    transport_error,
)
from router.engine.anthropic_tools import is_anthropic_tool, runs_anthropic_tools
from router.policy.model import Backend
from router.sse import DataLines, LineTooLong

API_VERSION = "2023-06-01"
STRUCTURED_OUTPUTS_BETA = "structured-outputs-2025-11-13"
# The tool that carries a json_object answer (Anthropic has no schema-less JSON mode).
JSON_TOOL = "json_answer"
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "refusal": "content_filter", "model_context_window_exceeded": "length"}


# --- request ------------------------------------------------------------------------------------
def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content or ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part))
    return blocks


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system text, Anthropic messages): tool results become user turns; same-role turns merge."""
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"))
            if text:
                system.append(text)
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": function.get("name") or "",
                               "input": _arguments(function.get("arguments"))})
            add("assistant", blocks)
        elif role in ("tool", "function"):
            add("user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "",
                          "content": _text_of(message.get("content")) or ""}])
        else:
            add("user", _blocks(message.get("content")))
    return ("\n\n".join(system) or None), out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out: dict[str, Any] = {"type": "tool", "name": name}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _tool(tool: Any) -> dict[str, Any] | None:
    """A chat tool as Anthropic's; a tool of a type Anthropic defines (``web_search_20250305``: routing
    sends such requests to Claude only) is already Anthropic's and goes as it is."""
    if not isinstance(tool, dict):
        return None
    if is_anthropic_tool(tool.get("type")):
        return tool
    f = tool.get("function")
    if not isinstance(f, dict) or not f.get("name"):
        return None
    return {"name": f["name"], "description": f.get("description") or "",
            "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}


def anthropic_request(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(Messages API body, needs the structured-outputs beta header) for an adapted OpenAI body."""
    system, messages = _messages(body["messages"])
    out: dict[str, Any] = {"model": body["model"], "max_tokens": body["max_tokens"], "messages": messages}
    if system:
        out["system"] = system
    for name in ("temperature", "top_p", "top_k", "thinking"):
        if name in body:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = [tool for t in body.get("tools") or () if (tool := _tool(t)) is not None]
    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    beta = False
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        out["output_format"] = {"type": "json_schema", "schema": schema}
        beta = True
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object" and "tools" not in out:
        # No schema-less JSON mode: a forced tool whose input is the answer (Anthropic's documented way).
        out["tools"] = [{"name": JSON_TOOL, "description": "Answer with a JSON object.",
                         "input_schema": {"type": "object"}}]
        out["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        out.pop("thinking", None)  # a forced tool cannot be combined with thinking
    if "thinking" in out and _in_tool_loop(messages):
        # With thinking on, a replayed tool_use turn must start with its signed thinking block, which
        # an OpenAI client cannot send back: this turn goes without thinking (Anthropic's docs,
        # extended thinking "with tool use").
        out.pop("thinking")
    if body.get("stream"):
        out["stream"] = True
    return out, beta


def _in_tool_loop(messages: list[dict[str, Any]]) -> bool:
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    return last is not None and any(b.get("type") == "tool_use" for b in last["content"])


# --- the client's own Messages body (``/v1/messages`` routed to Claude) -------------------------
# Messages API reference (platform.claude.com/docs/en/api/messages): everything the client sent is
# Anthropic's own — system blocks and cache_control (build-with-claude/prompt-caching), thinking
# blocks with their signatures (build-with-claude/extended-thinking), document blocks and citations
# (build-with-claude/citations), tool_use ids and tool_result blocks, stop_sequences, metadata.user_id,
# top_k, output_config, service_tier — so it is sent as it came. What the route must change:
# ``model`` (the backend's id), ``max_tokens`` (the policy's money cap lowers it), ``stream``, and what
# the CLAUDE dialect says Claude cannot take together (dialects.py): temperature with top_p; sampling
# or a forced tool choice with extended thinking; a thinking budget not below max_tokens.
_SAMPLING = ("temperature", "top_p", "top_k")


def speaks_messages(backend: Backend) -> bool:
    """Does this backend's client (``AnthropicClient``) send a Messages body as it is? (What routing
    asks of a route for a request with Anthropic-defined tools.)"""
    return runs_anthropic_tools(backend)


def passthrough_body(native: NativeRequest | None, adapted: dict[str, Any],
                     backend: Backend) -> NativeRequest | None:
    """The client's Messages request for this route, or None when the route does not speak it natively.

    ``native``: the request as the door kept it (router-only fields out, ``anthropic_messages.
    claude_passthrough_body``; the client's ``anthropic-beta``); ``adapted``: this attempt's
    chat-shaped body (``modes.build_request``), which carries the route's decisions: model id,
    output cap, stream, the mode's thinking. The headers go on unchanged.
    """
    if native is None or not speaks_messages(backend):
        return None
    return NativeRequest(_adapted_native(native.body, adapted), native.headers)


def _adapted_native(native: dict[str, Any], adapted: dict[str, Any]) -> dict[str, Any]:
    out = dict(native)
    out["model"] = adapted["model"]
    out["max_tokens"] = adapted["max_tokens"]
    if adapted.get("stream"):
        out["stream"] = True
    else:
        out.pop("stream", None)
    if "thinking" not in out and "thinking" in adapted:
        out["thinking"] = adapted["thinking"]  # the route's mode asks for thinking; the client named none
    if "temperature" in out and "top_p" in out:
        del out["top_p"]  # Claude takes one of them; the chat path keeps temperature too
    thinking = out.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        _fit_thinking(out, thinking)
    return out


# Claude Code signed in with a Claude subscription sends ``oauth-2025-04-20``: it is about how the
# client authenticates (a bearer OAuth token), not a feature of the body; the gateway calls Claude
# with its own API key (``x-api-key``), so that beta is not the gateway's to send.
_AUTH_BETA = "oauth-"


def beta_header(client: str | None, *, structured_outputs: bool) -> str | None:
    """The ``anthropic-beta`` value to send: the client's betas as it listed them, then the gateway's
    own, each once (platform.claude.com/docs/en/api/beta-headers: several betas go comma-separated in
    one header; an unknown one is a 400, so nothing is invented here)."""
    if client is None and not structured_outputs:
        return None
    names = [n for n in (part.strip() for part in (client or "").split(","))
             if n and n.isprintable() and not n.startswith(_AUTH_BETA)]  # printable: never a line break upstream
    if structured_outputs:
        names.append(STRUCTURED_OUTPUTS_BETA)
    return ",".join(dict.fromkeys(names)) or None


# Fields every passthrough sets, whatever the client sent (the money cap's max_tokens is in cost_usd).
_ROUTE_OWNED = frozenset({"model", "stream", "max_tokens"})


def passthrough_adjusted(native: NativeRequest | None, body: dict[str, Any], backend: Backend,
                         mode: str) -> list[str] | None:
    """The client's fields a native call did not send as given (the ``router`` object's
    ``adjusted_params``), or None when this route is not a native one."""
    if native is None or not speaks_messages(backend):
        return None
    out = _adapted_native(native.body, build_request(body, backend, mode, max_output_tokens=None).body)
    return sorted(k for k, v in native.body.items() if k not in _ROUTE_OWNED and out.get(k, _MISSING) != v)


_MISSING = object()


def _fit_thinking(out: dict[str, Any], thinking: dict[str, Any]) -> None:
    choice = out.get("tool_choice")
    budget = thinking.get("budget_tokens")
    limit = int(out["max_tokens"])
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        del out["thinking"]  # a forced tool cannot be combined with thinking
        return
    if isinstance(budget, int) and budget >= limit:  # the money cap lowered max_tokens below the budget
        if limit - 1 < ANTHROPIC_MIN_THINKING_BUDGET:
            del out["thinking"]
            return
        out["thinking"] = {**thinking, "budget_tokens": limit - 1}
    for name in _SAMPLING:  # thinking takes no sampling changes
        out.pop(name, None)


def event_has_payload(event: dict[str, Any]) -> bool:
    """Does this Messages stream event carry anything the client sees (text, thinking, a tool call,
    the stop)? ``message_start``, an empty block's start, ``ping`` and the stops do not."""
    kind = event.get("type")
    if kind in ("content_block_delta", "message_delta"):
        return True
    if kind == "content_block_start":
        block = event.get("content_block")
        return isinstance(block, dict) and block.get("type") not in ("text", "thinking")
    return False


def usage_after_event(event: dict[str, Any], usage: Usage) -> Usage:
    """The request's usage once ``event`` is seen: ``message_start`` carries the input counts and
    ``message_delta`` the cumulative ones (output always; input too on newer API versions)."""
    kind = event.get("type")
    if kind == "message_start":
        message = event.get("message")
        return Usage.from_anthropic(message.get("usage") if isinstance(message, dict) else None)
    counts = event.get("usage") if kind == "message_delta" else None
    if not isinstance(counts, dict):
        return usage
    given = Usage.from_anthropic(counts)
    has_input = counts.get("input_tokens") is not None
    return Usage(input_tokens=given.input_tokens if has_input else usage.input_tokens,
                 cached_input_tokens=given.cached_input_tokens if has_input else usage.cached_input_tokens,
                 output_tokens=given.output_tokens if counts.get("output_tokens") is not None else usage.output_tokens,
                 # cumulative like the rest: the searches run during the stream are counted at its end
                 tool_fees_usd=given.tool_fees_usd if "server_tool_use" in counts else usage.tool_fees_usd)


# --- response -----------------------------------------------------------------------------------
def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def openai_response(message: dict[str, Any]) -> dict[str, Any]:
    """A Messages API answer as an OpenAI ``chat.completion`` (every field the schema requires)."""
    text: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    as_json = False
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            text.append(orjson.dumps(block.get("input") or {}).decode())
            as_json = True
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    out: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                           "refusal": None}
    if thinking:
        out["reasoning_content"] = "".join(thinking)
    if calls:
        out["tool_calls"] = calls
    finish = "stop" if as_json else _FINISH.get(str(message.get("stop_reason")), "stop")
    return {"id": f"chatcmpl-{message.get('id', '')}", "object": "chat.completion", "created": int(time.time()),
            "model": message.get("model") or "",
            "choices": [{"index": 0, "message": out, "logprobs": None, "finish_reason": finish}],
            "usage": openai_usage(message.get("usage") or {})}


class _StreamState:
    """Anthropic stream events to OpenAI chunks: one id/model/created, tool calls by index."""

    __slots__ = ("blocks", "created", "finish", "id", "model", "tools", "usage")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, tool index)
        self.tools = 0
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def on_event(self, event: dict[str, Any]) -> dict[str, Any] | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            kind_of, tool = self.blocks.get(int(event.get("index", 0)), ("text", 0))
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return self.chunk({"content": delta.get("text", "")})
            if dtype == "thinking_delta":
                return self.chunk({"reasoning_content": delta.get("thinking", "")})
            if dtype == "input_json_delta" and kind_of == "json":
                return self.chunk({"content": delta.get("partial_json", "")})
            if dtype == "input_json_delta" and kind_of == "tool":
                return self.chunk({"tool_calls": [{"index": tool, "function": {
                    "arguments": delta.get("partial_json", "")}}]})
            return None  # signature_delta, citations, a server tool's input (it ran at Anthropic)
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            index = int(event.get("index", 0))
            if block.get("type") == "tool_use" and block.get("name") == JSON_TOOL:
                self.blocks[index] = ("json", 0)
                return None
            if block.get("type") == "tool_use":
                self.blocks[index] = ("tool", self.tools)
                self.tools += 1
                return self.chunk({"tool_calls": [{"index": self.tools - 1, "id": block.get("id"), "type": "function",
                                                   "function": {"name": block.get("name"), "arguments": ""}}]})
            self.blocks[index] = (str(block.get("type")), 0)
            return None
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = f"chatcmpl-{message.get('id', '')}"
            self.model = str(message.get("model") or "")
            self.usage = dict(message.get("usage") or {})
            return self.chunk({"role": "assistant", "content": ""})
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = str((event.get("delta") or {}).get("stop_reason"))
            json_answer = any(kind_of == "json" for kind_of, _ in self.blocks.values())
            self.finish = "stop" if json_answer else _FINISH.get(reason, "stop")
            return self.chunk({}, self.finish)
        return None  # ping, content_block_stop, message_stop

    def usage_chunk(self) -> dict[str, Any]:
        """The usage once, on a last chunk without choices (as OpenAI sends it for include_usage)."""
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": openai_usage(self.usage)}


# --- client -------------------------------------------------------------------------------------
class AnthropicClient:
    """Calls ``{api_base}/v1/messages`` on the relay's connection pool."""

    def __init__(self, relay: OpenAIRelay) -> None:
        self._relay = relay

    @staticmethod
    def _request(call: UpstreamCall) -> tuple[str, dict[str, str], bytes]:
        native = call.native
        body, beta = (native.body, False) if native is not None else anthropic_request(call.body)
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        betas = beta_header(native.headers.get("anthropic-beta") if native is not None else None,
                            structured_outputs=beta)
        if betas is not None:
            headers["anthropic-beta"] = betas
        base = (call.backend.api_base or "https://api.anthropic.com").rstrip("/")
        url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        return url, headers, orjson.dumps(body)

    async def complete(self, call: UpstreamCall) -> dict[str, Any]:
        """An OpenAI ``chat.completion``; for a native call, Claude's ``Message`` as it came."""
        url, headers, body = self._request(call)
        resp = None
        try:
            resp = await self._relay.pool().request("POST", url, headers, body,
                                                    connect_s=call.backend.connect_timeout_s,
                                                    total_s=call.attempt_timeout_s)
            raw = await resp.read()
            if resp.status != 200:
                raise status_error(resp.status, raw, resp.headers, names_params=False)
        except (TimeoutError, Http1Error) as exc:
            raise transport_error(exc, call.backend_name) from None
        finally:
            if resp is not None:
                resp.close()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("protocol", f"{call.backend_name} sent a body that is not JSON") from None
        if not isinstance(data, dict) or data.get("type") != "message":
            raise UpstreamError("protocol", f"{call.backend_name} sent no message")
        if not isinstance(data.get("content"), list) or not isinstance(data.get("usage") or {}, dict):
            # garbage is an upstream failure, never passed on (nor converted) for the client
            raise UpstreamError("protocol", f"{call.backend_name} sent a malformed message")
        return data if call.native is not None else openai_response(data)

    def stream(self, call: UpstreamCall) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chunks; for a native call, Claude's events as they came (through ``message_stop``),
        with ``ready()`` (one event per ``data:`` payload: frames coalesce as on the relay).
        Errors before the first one keep their kind, later ones are ``mid_stream``."""
        if call.native is None:
            return self._chunks(call)
        lines = DataLines()
        return RelayStream(self._events(call, lines), lines)

    async def _chunks(self, call: UpstreamCall) -> AsyncGenerator[dict[str, Any], None]:
        state = _StreamState()
        async with aclosing(self._events(call)) as events:  # closing this closes the upstream call
            async for event in events:
                if event.get("type") == "message_stop":
                    if state.finish is None:
                        raise UpstreamError("mid_stream", f"{call.backend_name} stopped before message_delta")
                    yield state.usage_chunk()
                    return
                chunk = state.on_event(event)
                if chunk is not None:
                    yield chunk

    async def _events(self, call: UpstreamCall, lines: DataLines | None = None) -> AsyncGenerator[dict[str, Any], None]:
        """The upstream's events, parsed, up to and including ``message_stop``; an ``error`` event,
        a malformed one or a stream cut short raise."""
        started = False
        url, headers, body = self._request(call)
        resp = None
        lines = lines or DataLines()  # only data: lines; the event: line repeats the type the data carries
        try:
            resp = await self._relay.pool().request("POST", url, headers, body,
                                                    connect_s=call.backend.connect_timeout_s,
                                                    read_s=call.backend.timeout_s)
            if resp.status != 200:
                raise status_error(resp.status, await resp.read(), resp.headers, names_params=False)
            resp.stream_into(lines)
            while (payload := await lines.next()) is not None:
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise UpstreamError("protocol", f"{call.backend_name} sent a malformed event") from None
                kind = event.get("type") if isinstance(event, dict) else None
                if not isinstance(kind, str):
                    raise UpstreamError("protocol", f"{call.backend_name} sent an event without a type")
                if kind == "error":
                    raise UpstreamError("mid_stream" if started else "http_5xx", error_message_from_body(payload))
                started = True
                if kind == "message_stop":
                    resp.release_at_end()  # pooled once the HTTP message ends too
                yield event
                if kind == "message_stop":
                    return
            if started:
                raise UpstreamError("mid_stream", f"{call.backend_name} ended the stream before message_stop")
            raise UpstreamError("protocol", f"{call.backend_name} sent an empty stream")
        except LineTooLong:
            raise UpstreamError("mid_stream" if started else "protocol",
                                f"{call.backend_name} sent an over-long event") from None
        except (TimeoutError, Http1Error) as exc:
            raise transport_error(exc, call.backend_name, stream=True, started=started) from None
        finally:
            if resp is not None:
                resp.close()  # a stream left half-read (error, client gone) closes its connection

    async def aclose(self) -> None:
        return None  # the pool is the relay's
