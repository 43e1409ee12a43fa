"""What the real services refuse with a 400, so the demo refuses it too.

Written from the vendors' public behaviour, independently of the gateway's own table
(``router/dispatch/dialects.py``): a request the gateway adapts wrongly fails here as it would in
production. Each rule returns ``(message, param, code)``; the messages follow the vendors' wording.

- OpenAI GPT-5 family (API reference; error messages as the API returns them): ``max_tokens`` and
  ``stop`` unsupported on reasoning models; sampling parameters only at their defaults, except
  GPT-5.1/5.2 with ``reasoning_effort: "none"``; ``reasoning_effort`` values per model; unknown
  arguments (``top_k``, ``chat_template_kwargs``, ``thinking``) unrecognised.
- Moonshot ``kimi-k2.5`` (platform docs, "Parameter Comparison"): temperature 0.6 / 1.0, top_p 0.95,
  n 1 and the penalties 0 cannot be modified; in thinking mode an assistant tool-call turn needs
  ``reasoning_content``.
- Anthropic Messages (API reference, extended thinking guide): temperature 0-1; not with top_p on
  Sonnet 4.5; thinking needs 1024 <= budget_tokens < max_tokens and refuses sampling changes and a
  forced tool_choice; unknown top-level fields are "Extra inputs are not permitted".
"""

from __future__ import annotations

from typing import Any

Refusal = tuple[str, str | None, str | None]

_UNKNOWN_TO_OPENAI = ("top_k", "min_p", "repetition_penalty", "chat_template_kwargs", "thinking")
_SAMPLING_DEFAULTS = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0,
                      "logprobs": False, "top_logprobs": None, "logit_bias": None}


def _gpt5_efforts(model: str) -> tuple[str, ...] | None:
    if model.startswith(("gpt-5.2", "gpt-5.3", "gpt-5.4")):
        return ("none", "low", "medium", "high", "xhigh")
    if model.startswith("gpt-5.1"):
        return ("none", "low", "medium", "high")
    if model.startswith("gpt-5"):
        return ("minimal", "low", "medium", "high")
    return None


def openai_refusal(body: dict[str, Any]) -> Refusal | None:
    for name in _UNKNOWN_TO_OPENAI:
        if name in body:
            return f"Unrecognized request argument supplied: {name}", None, None
    model = str(body.get("model") or "")
    efforts = _gpt5_efforts(model)
    if efforts is None:
        return None
    if "max_tokens" in body:
        return ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    if "stop" in body:
        return ("Unsupported parameter: 'stop' is not supported with this model.", "stop",
                "unsupported_parameter")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in efforts:
        return (f"Unsupported value: '{effort}' is not supported with the '{model}' model. Supported values are: "
                f"{', '.join(repr(e) for e in efforts)}.", "reasoning_effort", "unsupported_value")
    sampling_ok = "none" in efforts and effort == "none"
    if not sampling_ok:
        for name, default in _SAMPLING_DEFAULTS.items():
            if name in body and body[name] not in (default, None):
                return (f"Unsupported value: '{name}' does not support {body[name]!r} with this model. "
                        f"Only the default ({default}) value is supported.", name, "unsupported_value")
    return None


_MOONSHOT_FIXED = {"top_p": 0.95, "n": 1, "presence_penalty": 0, "frequency_penalty": 0}


def moonshot_refusal(body: dict[str, Any]) -> Refusal | None:
    thinking = body.get("thinking")
    thinks = not (isinstance(thinking, dict) and thinking.get("type") == "disabled")
    fixed = {**_MOONSHOT_FIXED, "temperature": 1.0 if thinks else 0.6}
    for name, value in fixed.items():
        if name in body and body[name] != value:
            return (f"invalid {name}: only {value} is allowed for this model", name, None)
    if thinks:
        for i, message in enumerate(body.get("messages") or ()):
            if (isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls")
                    and not message.get("reasoning_content")):
                return (f"thinking is enabled but reasoning_content is missing in assistant tool call message "
                        f"at index {i}", None, None)
    return None


_ANTHROPIC_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "output_format", "container", "mcp_servers",
    "context_management",
    # structured outputs / effort, automatic prompt caching (platform.claude.com/docs/en/api/messages):
    # what a /v1/messages client sends, which the gateway passes to Claude as it came
    "output_config", "cache_control"})


def anthropic_refusal(body: dict[str, Any]) -> str | None:
    extra = sorted(set(body) - _ANTHROPIC_FIELDS)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    if "temperature" in body and "top_p" in body:
        return "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= int(body.get("max_tokens") or 0):
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                return f"`{name}` may not be set when thinking is enabled."
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            return "Thinking may not be enabled when tool_choice forces tool use."
    if "output_format" in body and not isinstance(body["output_format"], dict):
        return "output_format: Input should be an object"
    return None
