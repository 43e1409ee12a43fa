"""What each upstream accepts: one table, per backend kind and model family.

A client speaks OpenAI's Chat Completions and cannot know which upstream answers; the gateway
adapts the request to the route that serves it (``router/dispatch/modes.py`` applies this table).
Every entry names the public source it follows. An entry says:

- ``output_limit``: the name of the output-token limit field the upstream takes;
- ``sampling``: the sampling parameters it takes, with their accepted range (values outside are
  clamped); sampling parameters not listed are dropped;
- ``fixed``: parameters whose value the upstream fixes (client values are dropped, the upstream's
  own value applies);
- ``thinking``: how a mode becomes parameters (``chat_template_kwargs``, Moonshot's ``thinking``,
  OpenAI's ``reasoning_effort``, Anthropic's ``thinking`` with ``budget_tokens``);
- ``efforts``: the ``reasoning_effort`` values accepted (OpenAI);
- ``never``: fields that must not reach this upstream (it refuses unknown arguments);
- ``video``: whether ``video_url`` parts are served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from router.policy.model import Backend

Range = tuple[float, float]
ThinkingStyle = Literal["chat_template_kwargs", "moonshot", "reasoning_effort", "anthropic", "none"]

# The OpenAI request fields that tune sampling (and are therefore model-family specific).
SAMPLING_PARAMS = ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
                   "repetition_penalty", "n", "seed", "logprobs", "top_logprobs", "logit_bias")
# Fields only some upstreams understand; each dialect's ``never`` picks from these and others.
VENDOR_EXTRAS = ("chat_template_kwargs", "thinking", "top_k", "min_p", "repetition_penalty")

_OPENAI_RANGES: dict[str, Range] = {  # OpenAI API reference, createChatCompletion request body
    "temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0), "n": (1, 1), "seed": (-(2 ** 63), 2 ** 63 - 1),
    "logprobs": (0, 1), "top_logprobs": (0, 20), "logit_bias": (0, 0),
}


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    output_limit: Literal["max_tokens", "max_completion_tokens"]
    sampling: dict[str, Range]
    thinking: ThinkingStyle
    never: frozenset[str]
    fixed: frozenset[str] = frozenset()
    efforts: frozenset[str] = frozenset()
    # reasoning_effort per mode (OpenAI): what a forced instant/thinking mode means on this family.
    mode_efforts: dict[str, str] = field(default_factory=dict)
    # Sampling is accepted only at this reasoning effort (GPT-5.2: only with effort ``none``).
    sampling_only_at_effort: str | None = None
    exclusive_sampling: tuple[str, ...] = ()  # at most one of these (Claude: temperature or top_p)
    video: bool = False
    model_ids: dict[str, str] = field(default_factory=dict)  # the upstream's name for a model
    recommended: dict[str, dict[str, float]] = field(default_factory=dict)  # per mode, when unset


# --- Kimi K2.5 --------------------------------------------------------------------------------
# Model card / deployment guide (huggingface.co/moonshotai/Kimi-K2.5, docs/deploy_guidance.md):
# instant mode via chat_template_kwargs {"thinking": false} on vLLM / SGLang; recommended
# temperature 1.0 (thinking) / 0.6 (instant), top_p 0.95; video input is experimental and served
# by the official API only. vLLM's ChatCompletionRequest (vllm/entrypoints/openai/protocol.py) and
# SGLang's (sglang/srt/entrypoints/openai/protocol.py) take max_tokens and max_completion_tokens,
# top_k / min_p / repetition_penalty and chat_template_kwargs. NIM follows vLLM's request model.
_KIMI_RECOMMENDED = {"instant": {"temperature": 0.6, "top_p": 0.95},
                     "thinking": {"temperature": 1.0, "top_p": 0.95},
                     "agent": {"temperature": 1.0, "top_p": 0.95}}
KIMI_ENGINE = Dialect(
    name="kimi-engine", output_limit="max_tokens",
    sampling={**_OPENAI_RANGES, "top_k": (-1, 1 << 20), "min_p": (0.0, 1.0), "repetition_penalty": (0.0, 2.0)},
    thinking="chat_template_kwargs", never=frozenset({"thinking"}), recommended=_KIMI_RECOMMENDED)

# Moonshot's platform (platform.moonshot.ai/docs/api/models-overview, "Parameter Comparison"):
# kimi-k2.5's temperature (0.6 instant / 1.0 thinking), top_p 0.95, n 1, presence_penalty 0 and
# frequency_penalty 0 "cannot be modified"; thinking is {"type": "enabled" | "disabled"}; the model
# id is "kimi-k2.5"; in thinking mode an assistant turn with tool_calls must carry its
# reasoning_content ("thinking is enabled but reasoning_content is missing in assistant tool call
# message", platform docs "kimi-k2.5 quickstart: tool use compatibility"). Video: official API only.
KIMI_MOONSHOT = Dialect(
    name="kimi-moonshot", output_limit="max_tokens",
    sampling={k: v for k, v in _OPENAI_RANGES.items() if k not in ("logit_bias",)},
    fixed=frozenset({"temperature", "top_p", "n", "presence_penalty", "frequency_penalty"}),
    thinking="moonshot", never=frozenset({"chat_template_kwargs", "top_k", "min_p", "repetition_penalty"}),
    video=True, model_ids={"moonshotai/Kimi-K2.5": "kimi-k2.5"})

# --- OpenAI GPT-5 family ----------------------------------------------------------------------
# OpenAI API reference (createChatCompletion): reasoning models take max_completion_tokens, not
# max_tokens ("Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens' instead").
# Reasoning guide + model pages: gpt-5 / gpt-5-mini / gpt-5-nano take reasoning_effort minimal | low |
# medium | high and no sampling parameters (temperature only at its default 1); gpt-5.1 takes none |
# low | medium | high; gpt-5.2 takes none | low | medium | high | xhigh, and temperature / top_p /
# logprobs only when reasoning_effort is "none" (developers.openai.com "Using GPT-5.2").
# Vendor extras (top_k, chat_template_kwargs, thinking) are refused as unknown arguments; reasoning
# models refuse `stop` ("Unsupported parameter: 'stop' is not supported with this model").
_OPENAI_NEVER = frozenset(VENDOR_EXTRAS)
_REASONING_NEVER = _OPENAI_NEVER | {"stop"}
GPT5 = Dialect(
    name="openai-gpt-5", output_limit="max_completion_tokens", sampling={"n": (1, 1), "seed": _OPENAI_RANGES["seed"]},
    thinking="reasoning_effort", never=_REASONING_NEVER, efforts=frozenset({"minimal", "low", "medium", "high"}),
    mode_efforts={"instant": "minimal", "thinking": "medium", "agent": "medium"})
GPT51 = Dialect(
    name="openai-gpt-5.1", output_limit="max_completion_tokens", sampling=dict(_OPENAI_RANGES),
    thinking="reasoning_effort", never=_REASONING_NEVER, efforts=frozenset({"none", "low", "medium", "high"}),
    mode_efforts={"instant": "none", "thinking": "medium", "agent": "medium"}, sampling_only_at_effort="none")
GPT52 = Dialect(
    name="openai-gpt-5.2", output_limit="max_completion_tokens", sampling=dict(_OPENAI_RANGES),
    thinking="reasoning_effort", never=_REASONING_NEVER,
    efforts=frozenset({"none", "low", "medium", "high", "xhigh"}),
    mode_efforts={"instant": "none", "thinking": "medium", "agent": "medium"}, sampling_only_at_effort="none")
# Other OpenAI chat models (gpt-4.1, gpt-4o): the whole createChatCompletion parameter set.
OPENAI_CHAT = Dialect(name="openai-chat", output_limit="max_completion_tokens", sampling=dict(_OPENAI_RANGES),
                      thinking="none", never=_OPENAI_NEVER)

# --- Anthropic Claude (Sonnet 4.5) ------------------------------------------------------------
# Messages API reference (docs.anthropic.com/en/api/messages; anthropic-sdk-python
# types/message_create_params.py): max_tokens required; temperature 0-1; top_p and top_k; Sonnet 4.5
# refuses temperature together with top_p ("temperature and top_p cannot both be specified");
# extended thinking {"type": "enabled", "budget_tokens" >= 1024 and < max_tokens} is incompatible
# with temperature / top_p / top_k changes and with a forced tool_choice (build-with-claude/
# extended-thinking). stop -> stop_sequences; OpenAI-only fields have no equivalent and are dropped.
CLAUDE = Dialect(
    name="anthropic-claude", output_limit="max_tokens",
    sampling={"temperature": (0.0, 1.0), "top_p": (0.0, 1.0), "top_k": (0, 1 << 20)},
    thinking="anthropic", never=frozenset({"chat_template_kwargs", "thinking", "min_p", "repetition_penalty"}),
    exclusive_sampling=("temperature", "top_p"))
ANTHROPIC_MIN_THINKING_BUDGET = 1024

# A generic OpenAI-compatible server (unknown engine): forward what OpenAI defines, no vendor extras.
# Its instant/thinking/agent modes are Kimi's, so Kimi's recommended sampling applies.
GENERIC = Dialect(name="openai-compatible", output_limit="max_tokens",
                  sampling={**_OPENAI_RANGES, "top_k": (-1, 1 << 20)}, thinking="none",
                  never=frozenset({"chat_template_kwargs", "thinking"}), recommended=_KIMI_RECOMMENDED)


def dialect_for(backend: Backend) -> Dialect:
    """The table entry for a backend: its kind (provider, flavour) and model family."""
    if backend.provider == "anthropic":
        return CLAUDE
    if backend.provider == "openai" or backend.flavour == "openai":
        model = backend.model.lower().rsplit("/", 1)[-1]
        if model.startswith("gpt-5.2") or model.startswith("gpt-5.3") or model.startswith("gpt-5.4"):
            return GPT52
        if model.startswith("gpt-5.1"):
            return GPT51
        if model.startswith("gpt-5") or model.startswith(("o1", "o3", "o4")):
            return GPT5
        if backend.provider == "openai":
            return OPENAI_CHAT
        return GENERIC
    if backend.flavour == "moonshot":
        return KIMI_MOONSHOT
    return KIMI_ENGINE  # vllm | sglang | nim


def serves_video(backend: Backend) -> bool:
    return dialect_for(backend).video
