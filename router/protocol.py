"""The OpenAI Chat Completions request as the gateway sees it, plus the per-request router controls.

The raw JSON object is kept and forwarded (so vendor extras pass through untouched); the pydantic
models below only validate the fields the router itself relies on, and accept everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router import taxonomy
from router.errors import InvalidRequest


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: dict[str, Any] | str


class VideoPart(_Open):
    type: Literal["video_url"]
    video_url: dict[str, Any] | str


class OtherPart(_Open):
    """Audio, files, refusals and future part types: accepted and forwarded."""

    type: str


ContentPart = TextPart | ImagePart | VideoPart | OtherPart


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class RouterControlsBody(BaseModel):
    """The optional ``router`` object in the body (``extra_body={"router": {...}}``)."""

    model_config = ConfigDict(extra="forbid")
    max_cost_usd: float | None = Field(default=None, gt=0)
    latency_budget_ms: float | None = Field(default=None, gt=0)
    mode: str | None = None
    task_type: str | None = None


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=1)
    router: RouterControlsBody | None = None

    @field_validator("tools")
    @classmethod
    def _tools_have_functions(cls, tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, tool in enumerate(tools or []):
            fn = tool.get("function")
            if tool.get("type", "function") == "function" and (
                    not isinstance(fn, dict) or not isinstance(fn.get("name"), str)):
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


def parse_json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def validate_chat_request(body: dict[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"Invalid value for '{param}': {first['msg']}", param=param) from None


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
