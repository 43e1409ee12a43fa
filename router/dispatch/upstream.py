"""What every upstream client shares: the call description, the error it raises, usage accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from router.policy.model import Backend

# Error kinds (closed set, also metric label values). Retryable ones may be retried on the same
# route and then fall back; the others fall back at once (or, for a client mistake, surface).
RETRYABLE_KINDS = frozenset({"http_5xx", "timeout", "connection", "rate_limited"})


class UpstreamError(Exception):
    def __init__(self, kind: str, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def client_fault(self) -> bool:
        """The upstream rejected the request itself (e.g. a malformed tool schema): no fallback helps."""
        return self.kind == "http_4xx" and self.status in (400, 413, 422)


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    backend_name: str
    backend: Backend
    api_key: str
    body: dict[str, Any]
    timeout_s: float | None = None  # this attempt's limit; None: the backend's timeout_s

    @property
    def attempt_timeout_s(self) -> float:
        return self.timeout_s if self.timeout_s is not None else self.backend.timeout_s


class UpstreamClient(Protocol):
    async def complete(self, call: UpstreamCall) -> dict[str, Any]: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )

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
        return fresh * price_in + self.cached_input_tokens * price_cached + self.output_tokens * price_out

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens


def normalize_reasoning(container: dict[str, Any]) -> None:
    """Newer vLLM names the thinking text ``reasoning``; clients get ``reasoning_content``."""
    if "reasoning" in container:
        text = container.pop("reasoning")
        if text is not None and container.get("reasoning_content") is None:
            container["reasoning_content"] = text


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
