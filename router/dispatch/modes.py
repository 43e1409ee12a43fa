"""How a route's mode becomes request parameters for its backend (Kimi K2.5's ways of working).

- instant: thinking off — ``chat_template_kwargs: {"thinking": false}`` on vLLM/SGLang/NIM,
  ``thinking: {"type": "disabled"}`` on Moonshot's API; temperature 0.6, top_p 0.95.
- thinking: the model's default; temperature 1.0, top_p 0.95.
- agent: thinking, with the client's tools.
The recommended sampling values apply only when the client did not set its own.
"""

from __future__ import annotations

from typing import Any

from router.policy.model import Backend

_SAMPLING = {"instant": (0.6, 0.95), "thinking": (1.0, 0.95), "agent": (1.0, 0.95)}
_TEMPLATE_FLAVOURS = frozenset({"vllm", "sglang", "nim"})
# Body fields that belong to the router, never to the upstream.
_ROUTER_ONLY = ("router",)


def upstream_body(body: dict[str, Any], backend: Backend, mode: str, *,
                  max_output_tokens: int | None) -> dict[str, Any]:
    """A shallow copy of the client's body, addressed to ``backend`` in ``mode``."""
    out = {k: v for k, v in body.items() if k not in _ROUTER_ONLY}
    out["model"] = backend.model
    if mode in _SAMPLING:
        temperature, top_p = _SAMPLING[mode]
        out.setdefault("temperature", temperature)
        out.setdefault("top_p", top_p)
        thinking = mode != "instant"
        if backend.flavour == "moonshot":
            out["thinking"] = {"type": "enabled" if thinking else "disabled"}
        elif backend.flavour in _TEMPLATE_FLAVOURS:
            kwargs = dict(out.get("chat_template_kwargs") or {})
            kwargs["thinking"] = thinking
            out["chat_template_kwargs"] = kwargs
    if max_output_tokens is not None:
        key = "max_completion_tokens" if ("max_completion_tokens" in out or backend.provider == "openai") \
            else "max_tokens"
        current = out.get("max_completion_tokens") or out.get("max_tokens")
        out.pop("max_tokens", None)
        out.pop("max_completion_tokens", None)
        out[key] = min(current, max_output_tokens) if isinstance(current, int) else max_output_tokens
    if out.get("stream"):
        # Usage is needed for cost accounting even when the client did not ask for it.
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return out
