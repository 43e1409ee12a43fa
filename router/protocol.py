"""The OpenAI Chat Completions request as the gateway sees it, plus the per-request router controls.

The raw JSON object is kept and forwarded (so vendor extras pass through untouched); the pydantic
models below only validate the fields the router itself relies on, and accept everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag, ValidationError, field_validator

from router import taxonomy
from router.errors import InvalidRequest, RequestTooLarge


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# Part types the gateway knows the shape of; any other type is forwarded as it is.
_KNOWN_PARTS = frozenset({"text", "image_url", "video_url"})


def _url_object(value: Any, field: str) -> Any:
    """``{"url": "..."}`` (or the bare URL string some clients send)."""
    if isinstance(value, str) or (isinstance(value, dict) and isinstance(value.get("url"), str)):
        return value
    raise ValueError(f"{field} must be an object with a 'url' string")


class TextPart(_Open):
    type: Literal["text"]
    text: str = Field(strict=True)


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: Any

    @field_validator("image_url")
    @classmethod
    def _has_url(cls, value: Any) -> Any:
        return _url_object(value, "image_url")


class VideoPart(_Open):
    type: Literal["video_url"]
    video_url: Any

    @field_validator("video_url")
    @classmethod
    def _has_url(cls, value: Any) -> Any:
        return _url_object(value, "video_url")


class OtherPart(_Open):
    """Audio, files, refusals and future part types: accepted and forwarded."""

    type: str = Field(strict=True)



def _part_kind(part: Any) -> str:
    kind = part.get("type") if isinstance(part, dict) else getattr(part, "type", None)
    return kind if isinstance(kind, str) and kind in _KNOWN_PARTS else "other"


# Chosen by ``type``, so a bad part gets its own type's complaint (not every branch's).
ContentPart = Annotated[Annotated[TextPart, Tag("text")] | Annotated[ImagePart, Tag("image_url")]
                        | Annotated[VideoPart, Tag("video_url")] | Annotated[OtherPart, Tag("other")],
                        Discriminator(_part_kind)]


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: StrictBool = False


class RouterControlsBody(BaseModel):
    """The optional ``router`` object in the body (``extra_body={"router": {...}}``)."""

    model_config = ConfigDict(extra="forbid")
    max_cost_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    latency_budget_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    mode: str | None = None
    task_type: str | None = None


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    # Strict where the gateway itself acts on the value: "false" is not false (OpenAI answers 400).
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, strict=True)
    n: int | None = Field(None, ge=1, le=1, strict=True)
    # Vendor extras the gateway rewrites per mode (router/dispatch/modes.py): objects when present.
    chat_template_kwargs: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    router: RouterControlsBody | None = None

    @field_validator("temperature", "top_p", mode="before")
    @classmethod
    def _number_not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool | str):  # JSON true is not 1, "0.5" is not a number
            raise ValueError("must be a number")
        return value

    @field_validator("tools")
    @classmethod
    def _tools_have_functions(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, tool in enumerate(tools or []):
            kind = tool.get("type", "function")
            if not isinstance(kind, str):
                raise ValueError(f"tools[{i}].type must be a string such as 'function'")
            fn = tool.get("function")
            if kind == "function" and (not isinstance(fn, dict) or not isinstance(fn.get("name"), str)):
                raise ValueError(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}")
        return tools


@dataclass(frozen=True, slots=True)
class RouterControls:
    """Per-request controls after combining headers and body (strictest wins)."""

    max_cost_usd: float | None = None
    latency_budget_ms: float | None = None
    mode: str | None = None
    task_type: str | None = None


NO_CONTROLS = RouterControls()


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """Caps on the shape of one request (sizes in bytes are the door's ``max_body_bytes``)."""

    max_messages: int = 2048
    max_content_parts: int = 4096  # summed over every message
    # orjson re-serialises at most 254 levels (the body goes upstream, tools into the classifier);
    # deeper is refused up front as a client error rather than failing later as a 500.
    max_nesting: int = 128


_limits = BodyLimits()


def set_body_limits(limits: BodyLimits) -> None:
    """The process's caps, from its settings at startup."""
    global _limits
    _limits = limits


def _nesting_problem(raw: bytes, body: dict[str, Any], limit: int) -> bool:
    """Is the body nested deeper than ``limit``? Counting brackets (C speed) rules out nearly every
    body at once; only those with that many brackets get the exact walk."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def check_body_shape(body: dict[str, Any], limits: BodyLimits) -> None:
    """Too many messages or content parts: 413 before anything walks them (O(messages))."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return  # validation names the problem
    if len(messages) > limits.max_messages:
        raise RequestTooLarge(f"The request has {len(messages)} messages; the limit is {limits.max_messages}.",
                              param="messages")
    parts = sum(len(m["content"]) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list))
    if parts > limits.max_content_parts:
        raise RequestTooLarge(f"The request has {parts} content parts; the limit is {limits.max_content_parts}.",
                              param="messages")


def _precheck(raw: bytes, limits: BodyLimits) -> None:
    """Refuse a body that cannot be within the caps before parsing it: building 250k part objects
    takes orjson ~0.3 s holding the GIL. Counting keys is C speed; an escaped ``\\"role\\"`` inside a
    string does not match. The bound is loose (x4: ``type`` also appears in tools and schemas); the
    exact check follows the parse."""
    if raw.count(b'"role"') > 4 * limits.max_messages:
        raise RequestTooLarge(f"The request has more than {limits.max_messages} messages.", param="messages")
    if raw.count(b'"type"') > 4 * limits.max_content_parts:
        raise RequestTooLarge(f"The request has more than {limits.max_content_parts} content parts.",
                              param="messages")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    _precheck(raw, _limits)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    limits = _limits
    if _nesting_problem(raw, body, limits.max_nesting):
        raise InvalidRequest(f"The request body is nested more than {limits.max_nesting} levels deep.")
    check_body_shape(body, limits)
    return body


# Errors that only say "this union branch did not match": the other branches say why.
_BRANCH_MISMATCH = frozenset({"literal_error", "string_type", "list_type", "dict_type", "model_type"})


def _param(loc: tuple[int | str, ...]) -> str | None:
    """The field path, without pydantic's union-branch tags (``str``, ``list[...]``, ``TextPart``)."""
    parts: list[str] = []
    after_index = False
    for p in loc:
        if isinstance(p, str) and ("[" in p or p in ("str", "int", "float", "bool")
                                   or (after_index and p in (*_KNOWN_PARTS, "other"))):
            after_index = False  # a union-branch tag (a part's tag follows its list index)
            continue
        parts.append(str(p))
        after_index = isinstance(p, int)
    return ".".join(parts) or None


def validate_chat_request(body: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        found = exc.errors(include_url=False)
        # The most telling error: a real complaint over a branch mismatch, then the deepest path.
        best = max(found, key=lambda e: (e["type"] not in _BRANCH_MISMATCH, len(e["loc"])))
        param = _param(best["loc"])
        message = str(best["msg"]).removeprefix("Value error, ")
        raise InvalidRequest(f"Invalid value for '{param}': {message}", param=param) from None


def _positive_number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InvalidRequest(f"Header {name} must be a number, got {value!r}.", param=name) from None
    if not math.isfinite(number) or number <= 0:
        raise InvalidRequest(f"Header {name} must be a positive number, got {value!r}.", param=name)
    return number


def _strictest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _one_of(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}; got {value!r}.", param=name)
    return value


def parse_controls(headers: Any, body: RouterControlsBody | None) -> RouterControls:
    """Combine the ``X-Router-*`` headers with the body's ``router`` object."""
    h_cost = headers.get("x-router-max-cost")
    h_budget = headers.get("x-router-latency-budget")
    header_mode = headers.get("x-router-mode")
    header_task = headers.get("x-router-task-type")
    if body is None and h_cost is None and h_budget is None and header_mode is None and header_task is None:
        return NO_CONTROLS  # the common case: nothing to combine
    body = body or RouterControlsBody()
    mode = _one_of(body.mode or header_mode, taxonomy.MODES,
                   "router.mode" if body.mode else "X-Router-Mode")
    if body.mode and header_mode and _one_of(header_mode, taxonomy.MODES, "X-Router-Mode") != mode:
        raise InvalidRequest("X-Router-Mode and router.mode disagree.", param="router.mode")
    task_type = _one_of(body.task_type or header_task, taxonomy.TASK_TYPES,
                        "router.task_type" if body.task_type else "X-Router-Task-Type")
    return RouterControls(
        max_cost_usd=_strictest(
            _positive_number(h_cost, "X-Router-Max-Cost") if h_cost is not None else None,
            body.max_cost_usd),
        latency_budget_ms=_strictest(
            _positive_number(h_budget, "X-Router-Latency-Budget") if h_budget is not None else None,
            body.latency_budget_ms),
        mode=mode,
        task_type=task_type,
    )
