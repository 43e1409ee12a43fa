"""What every upstream client shares: the call description, the error it raises, usage accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.policy.model import Backend

# Error kinds (closed set, also metric label values). Retryable ones may be retried on the same
# route and then fall back; the others fall back at once (or, for a client mistake, surface).
# ``unsupported_param``: the upstream refused a parameter this route cannot take (not the client's
# content), so the next route may well accept the same request.
RETRYABLE_KINDS = frozenset({"http_5xx", "timeout", "connection", "rate_limited"})

# Request fields that carry the client's content: a 4xx naming one of them follows the request to
# any backend. Any other top-level field (temperature, max_tokens, top_k, thinking, ...) is a
# parameter one route may take and another not.
_CONTENT_PARAMS = ("messages", "tools", "functions", "tool_choice", "response_format", "input", "prompt",
                   "system")
# OpenAI's codes for a parameter (or value) the model does not take; vLLM/pydantic and litellm say it
# in the message ("Extra inputs are not permitted", "Unrecognized request argument", "not supported").
_UNSUPPORTED_CODES = frozenset({"unsupported_parameter", "unsupported_value", "unknown_parameter"})
_UNSUPPORTED_WORDS = ("unsupported parameter", "unsupported value", "unrecognized request argument",
                      "extra inputs are not permitted", "is not supported", "not supported with this model",
                      "use 'max_completion_tokens'", "use max_completion_tokens")


def _is_content_param(param: str) -> bool:
    head = param.replace("[", ".").split(".", 1)[0]
    return head in _CONTENT_PARAMS


def classify_4xx(status: int, message: str, param: str | None, code: str | None) -> str:
    """``unsupported_param`` for a route-specific refusal, else ``http_4xx``."""
    if status not in (400, 422):
        return "http_4xx"
    if param and _is_content_param(param):
        return "http_4xx"
    if (code or "").lower() in _UNSUPPORTED_CODES:
        return "unsupported_param"
    lowered = message.lower()
    if any(words in lowered for words in _UNSUPPORTED_WORDS):
        return "unsupported_param"
    return "unsupported_param" if param else "http_4xx"


class UpstreamError(Exception):
    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.message = message
        self.param = param  # the upstream's own ``param`` and ``code`` (4xx), kept for the client
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def client_fault(self) -> bool:
        """The upstream rejected the request itself (e.g. a malformed tool schema): no fallback helps."""
        return self.kind == "http_4xx" and self.status in (400, 413, 422)

    @property
    def follows_request(self) -> bool:
        """A failure that may be caused by this request's body rather than the backend: an internal
        error (500), as opposed to the availability statuses (502/503/504) or a timeout. Whether it
        was the request is only known once another backend answered the same body (or failed alike)."""
        return self.kind == "http_5xx" and self.status == 500


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """A client's request in a protocol some upstream speaks natively (the ``/v1/messages`` body,
    for Claude): the body, and the client's headers of that protocol the upstream must see too
    (``anthropic-beta``: the features the body uses). Built by the door, adapted per route by
    ``anthropic.passthrough_body``."""

    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    backend_name: str
    backend: Backend
    api_key: str
    body: dict[str, Any]
    timeout_s: float | None = None  # this attempt's limit; None: the backend's timeout_s
    first_token_s: float | None = None  # streams: the first token's limit; None: first_token_timeout_s
    # The client's own Anthropic Messages request (body, and its anthropic-beta), adapted to this
    # route, for a route that speaks the Messages API natively (``anthropic.passthrough_body``): sent
    # instead of ``body``, and answered with the upstream's Messages answer / events as they are.
    # None: the chat-shaped path.
    native: NativeRequest | None = None

    @property
    def attempt_timeout_s(self) -> float:
        return self.timeout_s if self.timeout_s is not None else self.backend.timeout_s

    @property
    def first_token_timeout_s(self) -> float:
        limit = self.first_token_s if self.first_token_s is not None else self.backend.first_token_timeout_s
        return min(limit, self.attempt_timeout_s)


class UpstreamClient(Protocol):
    """``complete`` gives an OpenAI ``chat.completion`` — or, for a ``call.native`` call, the
    upstream's Anthropic ``Message``; ``stream`` gives chat chunks — or Anthropic's events."""

    async def complete(self, call: UpstreamCall) -> dict[str, Any]: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


# Anthropic bills its web search per search on top of the tokens: $10 per 1,000 searches (web search
# tool page, "Usage and pricing"; web fetch has no fee beyond its tokens). Counted from the answer's
# ``usage.server_tool_use.web_search_requests``.
WEB_SEARCH_USD = 0.01


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    tool_fees_usd: float = 0.0  # hook (r4-agents): what tools the upstream ran cost (Claude's web search)

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        """Counts from OpenAI's ``usage``; the shape was checked (``usage_problem``) on arrival."""
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            input_tokens=_count(usage.get("prompt_tokens")),
            cached_input_tokens=_count(prompt_details.get("cached_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
            reasoning_tokens=_count(completion_details.get("reasoning_tokens")),
        )

    @classmethod
    def from_anthropic(cls, usage: dict[str, Any] | None) -> Usage:
        """Counts from Anthropic's ``usage``: cache reads and writes are apart from ``input_tokens``
        there (their sum is the prompt; docs: platform.claude.com/docs/en/build-with-claude/prompt-caching)."""
        if not usage:
            return cls()
        cached = _count(usage.get("cache_read_input_tokens"))
        prompt = _count(usage.get("input_tokens")) + cached + _count(usage.get("cache_creation_input_tokens"))
        return cls(input_tokens=prompt, cached_input_tokens=cached, output_tokens=_count(usage.get("output_tokens")),
                   tool_fees_usd=web_search_fees(usage))

    def as_openai(self) -> dict[str, Any]:
        """OpenAI's ``usage`` object."""
        return {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
                "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
                "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens}}

    def cost_usd(self, backend: Backend) -> float:
        price_in, price_cached, price_out = backend.pricing.per_token_usd()
        fresh = max(0, self.input_tokens - self.cached_input_tokens)
        # completion_tokens already include reasoning tokens (OpenAI, vLLM and litellm agree).
        return (fresh * price_in + self.cached_input_tokens * price_cached + self.output_tokens * price_out
                + self.tool_fees_usd)

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.tool_fees_usd += other.tool_fees_usd


def web_search_fees(usage: dict[str, Any]) -> float:
    """The web search fees in an Anthropic ``usage`` (0 when it ran none)."""
    tools = usage.get("server_tool_use")
    return _count(tools.get("web_search_requests")) * WEB_SEARCH_USD if isinstance(tools, dict) else 0.0


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0


def _is_count(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0)


def usage_problem(usage: Any) -> str | None:
    """What is wrong with an upstream's ``usage`` object (None when absent or well-formed)."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "usage is not an object"
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        if not _is_count(usage.get(name)):
            return f"usage.{name} is not a count"
    for details, name in (("prompt_tokens_details", "cached_tokens"),
                          ("completion_tokens_details", "reasoning_tokens")):
        inner = usage.get(details)
        if inner is not None and (not isinstance(inner, dict) or not _is_count(inner.get(name))):
            return f"usage.{details} is malformed"
    return None


def answer_problem(data: Any, part: str) -> str | None:
    """What makes an upstream answer (``part="message"``) or stream chunk (``"delta"``) unusable
    — garbage is an upstream failure, never passed on to the client. None when it is well-formed."""
    if not isinstance(data, dict):
        return "not a JSON object"
    choices = data.get("choices")
    if part == "message" and not isinstance(choices, list):
        return "no choices"
    if choices is not None and not isinstance(choices, list):
        return "choices is not an array"
    for choice in choices or ():
        if not isinstance(choice, dict):
            return "a choice is not an object"
        inner = choice.get(part)
        if part == "message" and not isinstance(inner, dict):
            return "a choice has no message"
        if inner is not None and not isinstance(inner, dict):
            return f"a choice's {part} is not an object"
        if isinstance(inner, dict):
            content = inner.get("content")
            if content is not None and not isinstance(content, str | list):
                return f"a choice's {part}.content is neither text nor parts"
            calls = inner.get("tool_calls")
            if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
                return f"a choice's {part}.tool_calls is malformed"
        finish = choice.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            return "a choice's finish_reason is not a string"
    return usage_problem(data.get("usage"))


def normalize_reasoning(container: dict[str, Any]) -> None:
    """Newer vLLM names the thinking text ``reasoning``; clients get ``reasoning_content``."""
    if "reasoning" in container:
        text = container.pop("reasoning")
        if text is not None and container.get("reasoning_content") is None:
            container["reasoning_content"] = text


def error_details_from_body(raw: bytes) -> tuple[str | None, str | None]:
    """The upstream's ``error.param`` and ``error.code`` (OpenAI's shape), as short strings."""
    import orjson

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, None
    param, code = err.get("param"), err.get("code")
    return (str(param)[:100] if isinstance(param, str | int) and not isinstance(param, bool) else None,
            str(code)[:100] if isinstance(code, str | int) and not isinstance(code, bool) else None)


def complete_choice(choice: dict[str, Any]) -> None:
    """The nullable fields OpenAI's response schema requires, for upstreams that omit them (vLLM and
    SGLang leave out ``refusal``; some servers ``logprobs``)."""
    choice.setdefault("logprobs", None)
    message = choice.get("message")
    if isinstance(message, dict):
        message.setdefault("content", None)
        message.setdefault("refusal", None)


def error_message_from_body(raw: bytes, limit: int = 300) -> str:
    """The upstream's own error message, short, without echoing anything else it sent."""
    import orjson

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:limit].decode("utf-8", "replace")
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:limit]
        if isinstance(err, str):
            return err[:limit]
        if isinstance(data.get("message"), str):
            return str(data["message"])[:limit]
    return raw[:limit].decode("utf-8", "replace")


def status_error(status: int, raw: bytes, headers: Any, *, names_params: bool = True) -> UpstreamError:
    """An upstream's non-200 answer as an ``UpstreamError``: 429 (with its ``retry-after``), 5xx (529
    "overloaded" included), 4xx. ``names_params``: the error body is OpenAI's, whose ``param`` and
    ``code`` tell a parameter this route refuses from the request's own fault (``classify_4xx``);
    without them (Anthropic's errors) every 4xx is the request's."""
    message = error_message_from_body(raw)
    if status == 429:
        try:
            retry_after: float | None = float(headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        return UpstreamError("rate_limited", message, status=status, retry_after_s=retry_after)
    if status >= 500:
        return UpstreamError("http_5xx", message, status=status)
    if not names_params:
        return UpstreamError("http_4xx", message, status=status)
    param, code = error_details_from_body(raw)
    return UpstreamError(classify_4xx(status, message, param, code), message, status=status, param=param, code=code)


def transport_error(exc: BaseException, backend_name: str, *, stream: bool = False,
                    started: bool = False) -> UpstreamError:
    """A timeout or a connection failure (the relay's http1 pool, or aiohttp's) as an ``UpstreamError``;
    after a stream's first event it is ``mid_stream`` (the answer is incomplete; nothing else may be tried)."""
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        kind, text = "timeout", f"{backend_name} {'stopped sending' if stream else 'did not answer in time'}"
    else:
        kind, text = "connection", f"{backend_name}: {type(exc).__name__}"
    return UpstreamError("mid_stream" if started else kind, text)
