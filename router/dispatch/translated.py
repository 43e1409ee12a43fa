"""The translated path: providers that do not speak OpenAI's format (Anthropic, ...) via litellm.

This is the only module that imports litellm (slow to import, ~5-8 ms CPU per call), and it is
imported only when a policy enables such a backend. litellm must never fetch its price map.
"""

from __future__ import annotations

import logging
import os

# Forced, not defaulted: the gateway never reaches the internet at run time.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("LITELLM_LOG", "ERROR")

from collections.abc import AsyncIterator
from typing import Any

import litellm
from litellm.exceptions import APIConnectionError, RateLimitError, Timeout

from router.dispatch.upstream import (
    UpstreamCall,
    UpstreamError,
    answer_problem,
    classify_4xx,
    error_details_from_body,
    normalize_reasoning,
)

litellm.telemetry = False
# litellm's debug records quote whole requests (prompts) and their logger levels are left unset,
# so a gateway run with debug logging would pass them on: pin them to LITELLM_LOG (default ERROR).
for _name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_name).setLevel(os.environ["LITELLM_LOG"].upper())
litellm.suppress_debug_info = True
litellm.drop_params = True  # OpenAI fields a provider does not support are dropped, not fatal

# Fields litellm handles itself or that must not be forwarded as provider kwargs.
_OWN_FIELDS = frozenset({"model", "messages", "stream", "router", "chat_template_kwargs", "thinking"})


def _error(call: UpstreamCall, exc: Exception, *, started: bool) -> UpstreamError:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    if started:
        return UpstreamError("mid_stream", f"{call.backend_name}: {name}", status=status)
    if isinstance(exc, Timeout):
        return UpstreamError("timeout", f"{call.backend_name} did not answer in time")
    if isinstance(exc, RateLimitError) or status == 429:
        retry_after: float | None = None
        response = getattr(exc, "response", None)
        if response is not None:
            try:
                retry_after = float(response.headers.get("retry-after", ""))
            except (TypeError, ValueError):
                retry_after = None
        return UpstreamError("rate_limited", f"{call.backend_name} is rate limiting", status=429,
                             retry_after_s=retry_after)
    if isinstance(exc, APIConnectionError) and status is None:
        return UpstreamError("connection", f"{call.backend_name}: {name}")
    if isinstance(status, int) and 400 <= status < 500:
        message = str(getattr(exc, "message", "") or name)[:300]
        param, code = _param_and_code(exc)
        return UpstreamError(classify_4xx(status, message, param, code), message, status=status,
                             param=param, code=code)
    return UpstreamError("http_5xx", f"{call.backend_name}: {name}", status=status if isinstance(status, int) else 502)


def _param_and_code(exc: Exception) -> tuple[str | None, str | None]:
    """The provider's ``param``/``code`` when its error body says them (litellm keeps the response)."""
    response = getattr(exc, "response", None)
    try:
        raw = response.content if response is not None else b""
    except Exception:  # a streamed response whose body was not read
        return None, None
    return error_details_from_body(raw) if isinstance(raw, bytes) and raw else (None, None)


def _as_openai(data: dict[str, Any], part: str) -> dict[str, Any]:
    """A litellm response (``part="message"``) or chunk (``"delta"``) as OpenAI's shape: thinking as
    ``reasoning_content``, litellm's own extras dropped, and the nullable fields OpenAI's schema
    requires (``logprobs``, ``finish_reason``; ``content`` and ``refusal`` of a message) present even
    when ``exclude_none`` removed them."""
    data.pop("provider_specific_fields", None)
    for choice in data.get("choices") or ():
        choice.setdefault("logprobs", None)
        choice.setdefault("finish_reason", None)
        inner = choice.get(part)
        if isinstance(inner, dict):
            normalize_reasoning(inner)
            inner.pop("thinking_blocks", None)
            inner.pop("provider_specific_fields", None)
            if part == "message":
                inner.setdefault("content", None)
                inner.setdefault("refusal", None)
    return data


def _carries(delta: Any) -> bool:
    return isinstance(delta, dict) and any(delta.get(k) for k in ("content", "reasoning_content", "tool_calls"))


class LiteLLMClient:
    def _kwargs(self, call: UpstreamCall) -> dict[str, Any]:
        backend = call.backend
        kwargs = {k: v for k, v in call.body.items() if k not in _OWN_FIELDS}
        kwargs.update(model=f"{backend.provider if backend.provider != 'litellm' else ''}/{backend.model}".lstrip("/"),
                      messages=call.body["messages"], api_base=backend.api_base or None,
                      api_key=call.api_key or None, timeout=call.attempt_timeout_s, num_retries=0)
        return kwargs

    async def complete(self, call: UpstreamCall) -> dict[str, Any]:
        try:
            response = await litellm.acompletion(**self._kwargs(call))
        except Exception as exc:  # litellm raises many types; all become an UpstreamError
            raise _error(call, exc, started=False) from None
        data = _as_openai(response.model_dump(exclude_none=True), "message")
        if (problem := answer_problem(data, "message")) is not None:
            raise UpstreamError("protocol", f"{call.backend_name} sent a malformed answer: {problem}")
        return data

    async def stream(self, call: UpstreamCall) -> AsyncIterator[dict[str, Any]]:
        started = False
        try:
            response = await litellm.acompletion(stream=True, **self._kwargs(call))
            usage: dict[str, Any] | None = None
            template: dict[str, Any] = {}
            finished = False
            async for chunk in response:
                data = _as_openai(chunk.model_dump(exclude_none=True), "delta")
                if (problem := answer_problem(data, "delta")) is not None:
                    raise UpstreamError("mid_stream" if started else "protocol",
                                        f"{call.backend_name} sent a malformed chunk: {problem}")
                # litellm repeats usage (on the finish chunk and an extra one): keep the last, send it once.
                if data.get("usage"):
                    usage = data.pop("usage")
                if not data.get("choices"):
                    continue
                # litellm may send empty chunks after the finish chunk (Anthropic's message_stop), or
                # repeat it: the finish chunk is the last one that has choices, as OpenAI sends it.
                finish = any(c.get("finish_reason") for c in data["choices"])
                if finished and not any(_carries(c.get("delta")) for c in data["choices"]):
                    continue
                finished = finished or finish
                template = data
                started = True
                yield data
            if usage is not None and template:
                yield {"id": template.get("id"), "object": "chat.completion.chunk",
                       "created": template.get("created"), "model": template.get("model"),
                       "choices": [], "usage": usage}
        except UpstreamError:
            raise
        except Exception as exc:
            raise _error(call, exc, started=started) from None

    async def aclose(self) -> None:
        return None
