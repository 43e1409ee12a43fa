"""The policy's data model: backends, routes, per-task candidates, priors, defaults and guards.

A *backend* is one upstream endpoint; a *route* is a backend in a mode, named ``backend:mode``
(vendor backends have the single mode ``default``), or ``swarm``. The JSON schema shipped in
``router/policy/schema.json`` is generated from these classes (``python -m router.policy.schema``).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router import taxonomy

# A snapshot's date suffix: -YYYYMMDD (Anthropic) or -YYYY-MM-DD (OpenAI).
_SNAPSHOT_DATE = re.compile(r"-(?:20\d{6}|20\d\d-\d\d-\d\d)$")

Objective = Literal["cheapest_meeting_quality", "best_quality_within_budget", "fastest"]
Modality = Literal["text", "image", "video"]
# How a backend is called: "openai_compatible" and "openai" go through the lean relay;
# anything else is translated by litellm (the provider name is litellm's).
Provider = Literal["openai_compatible", "openai", "anthropic", "litellm"]
# How an OpenAI-compatible Kimi endpoint is told to skip thinking (see dispatch/modes.py).
Flavour = Literal["vllm", "sglang", "nim", "moonshot", "openai"]
KimiMode = Literal["instant", "thinking", "agent", "default"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pricing(_Strict):
    """USD per million tokens, or, for a self-hosted pool, its GPU-hour cost and throughput."""

    input_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    output_per_mtok: float | None = Field(default=None, ge=0)
    gpu_hour_usd: float | None = Field(default=None, ge=0, description="whole pool, per hour")
    throughput_tokens_per_s: float | None = Field(
        default=None, gt=0, description="pool's measured aggregate generation throughput")
    input_cost_ratio: float = Field(
        default=0.1, ge=0, description="self-hosted: price of an input token relative to an output token "
                               "(prefill is far cheaper than decode)")

    @model_validator(mode="after")
    def _one_scheme(self) -> Pricing:
        per_token = self.input_per_mtok is not None and self.output_per_mtok is not None
        per_hour = self.gpu_hour_usd is not None and self.throughput_tokens_per_s is not None
        if not (per_token or per_hour):
            raise ValueError("give input_per_mtok and output_per_mtok, or gpu_hour_usd and "
                             "throughput_tokens_per_s (self-hosted)")
        return self

    def per_token_usd(self) -> tuple[float, float, float]:
        """(input, cached input, output) price of one token."""
        if self.input_per_mtok is not None and self.output_per_mtok is not None:
            cached = self.cached_input_per_mtok if self.cached_input_per_mtok is not None \
                else self.input_per_mtok
            return self.input_per_mtok / 1e6, cached / 1e6, self.output_per_mtok / 1e6
        assert self.gpu_hour_usd is not None and self.throughput_tokens_per_s is not None
        output = self.gpu_hour_usd / 3600.0 / self.throughput_tokens_per_s
        return output * self.input_cost_ratio, output * self.input_cost_ratio * 0.1, output


class LatencyPrior(_Strict):
    """Seed values for the live estimates (replaced by observed EWMAs as traffic flows)."""

    ttft_ms: float = Field(default=500, gt=0)
    output_tokens_per_s: float = Field(default=60, gt=0)


class Backend(_Strict):
    provider: Provider = "openai_compatible"
    flavour: Flavour = "openai"
    model: str
    api_base: str = ""
    api_key_env: str | None = None
    requires_key: bool = True
    enabled: bool = True
    pricing: Pricing
    context_window: int = Field(default=128_000, gt=0)
    max_output_tokens: int = Field(default=32_768, gt=0)
    modalities: tuple[Modality, ...] = ("text",)
    modes: tuple[KimiMode, ...] = ("default",)
    supports_tools: bool = True
    thinks_by_default: bool = Field(
        default=False, description="the 'default' mode reasons before answering (e.g. GPT-5.x)")
    max_concurrency: int = Field(default=64, gt=0)
    timeout_s: float = Field(default=120, gt=0)
    first_token_timeout_s: float = Field(
        default=30, gt=0, description="streams: no first token within this long counts as a timeout (falls back)")
    connect_timeout_s: float = Field(default=5, gt=0)
    metrics_url: str = Field(default="", description="engine Prometheus endpoint (vLLM/SGLang) for queue depth")
    queue_capacity: int = Field(
        default=16, ge=0, description="engine queue depth at which the pool counts as saturated")
    latency: LatencyPrior = LatencyPrior()

    @property
    def uses_relay(self) -> bool:
        return self.provider in ("openai_compatible", "openai")


class TaskRule(_Strict):
    candidates: tuple[str, ...] = Field(min_length=1, description="routes in order of preference")
    min_quality: float | None = Field(default=None, ge=0, le=1, description="overrides the policy's min_quality")


class Defaults(_Strict):
    max_cost_usd: float = Field(default=1.0, gt=0)
    latency_budget_ms: float = Field(default=120_000, gt=0)


class OutputEstimate(_Strict):
    """Expected answer and reasoning tokens for a task type (before the answer-length hint)."""

    output_tokens: int = Field(gt=0)
    reasoning_tokens: int = Field(default=0, ge=0, description="extra tokens when the route thinks")


class RetrySettings(_Strict):
    attempts_per_route: int = Field(default=2, ge=1, le=5)
    backoff_base_ms: float = Field(default=50, ge=0)
    backoff_max_ms: float = Field(default=2_000, ge=0)
    attempt_timeout_factor: float = Field(
        default=4.0, ge=0, description="an attempt may take this many times its route's estimated latency "
                                       "(at least first_token_timeout_s, at most timeout_s) before it counts as "
                                       "a timeout and the chain moves on; 0: timeout_s alone")
    max_retry_after_s: float = Field(default=5, ge=0, description="longer retry-after means: move on")
    # The hung-upstream floor follows what each route really does (issue 12): once a route has
    # ``first_token_min_samples`` observations, its floor is ``first_token_factor`` x the
    # ``first_token_quantile`` of its recent times to first token (streams) or answer times (JSON),
    # kept within [first_token_min_s, the backend's first_token_timeout_s].
    first_token_factor: float = Field(
        default=3.0, ge=0, description="x the observed quantile of a route's TTFT = its hang floor; 0: fixed floor")
    first_token_quantile: float = Field(default=0.99, gt=0, le=1, description="the quantile of observed TTFTs used")
    first_token_min_s: float = Field(default=1.0, gt=0, description="the learned floor never goes below this")
    first_token_min_samples: int = Field(default=20, ge=1, description="observations before the floor is learned")


class CircuitSettings(_Strict):
    consecutive_failures: int = Field(default=5, ge=1)
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=20, ge=2, description="recent attempts the error rate is computed over")
    open_s: float = Field(default=10, gt=0, description="how long an open circuit rejects before probing")
    half_open_probes: int = Field(default=1, ge=1)


class EngineMetricsSettings(_Strict):
    """How often the self-hosted engines' Prometheus endpoints (``backends.*.metrics_url``) are read."""

    scrape_interval_s: float = Field(default=1.0, gt=0, le=60, description="seconds between two scrapes")
    scrape_timeout_s: float = Field(default=1.0, gt=0, le=30, description="a slower scrape counts as no reading")


class McpServer(_Strict):
    """An MCP server whose tools sub-agents may call (streamable HTTP, or stdio for a local one)."""

    transport: Literal["http", "stdio"] = "http"
    url: str = Field(default="", description="streamable HTTP endpoint; empty disables the server")
    command: str = Field(default="", description="stdio: the program to start")
    args: list[str] = Field(default_factory=list, description="stdio: its arguments")
    cost_per_call_usd: float = Field(default=0.0, ge=0, description="charged to the swarm ledger per call")

    @property
    def enabled(self) -> bool:
        return bool(self.url) if self.transport == "http" else bool(self.command)


class SwarmTools(_Strict):
    """Tools for sub-agents: each runs a bounded agent loop against these MCP servers."""

    servers: dict[str, McpServer] = Field(default_factory=dict)
    max_steps: int = Field(default=4, ge=1, le=32, description="model calls per sub-agent (tool rounds + answer)")
    tool_timeout_s: float = Field(default=10, gt=0, description="per tool call, connection included")
    agent_max_tokens: int = Field(default=8000, gt=0, description="tokens (in + out) one sub-agent may use")
    max_calls_per_step: int = Field(default=4, ge=1, le=32)


class SwarmSettings(_Strict):
    enabled: bool = True
    planner: str = "kimi:thinking"
    worker: str = "kimi:instant"
    aggregator: str = "kimi:thinking"
    max_agents: int = Field(default=100, ge=1, le=100)
    concurrency: int = Field(default=32, ge=1, description="sub-agents in flight at once, per swarm")
    agent_timeout_s: float = Field(default=60, gt=0)
    min_subtasks: int = Field(default=3, ge=2, description="auto picks swarm only from this many subtasks")
    worker_output_tokens: int = Field(default=400, gt=0)
    route_subtasks: bool = Field(
        default=True, description="route each subtask with decide() (swarm.worker is the fallback)")
    tools: SwarmTools = Field(default_factory=lambda: SwarmTools())


class CascadeSettings(_Strict):
    """Ask a cheap route for the label when the classifier is unsure (issue 17; router.pipeline.cascade)."""

    below: float = Field(default=0.5, gt=0, le=1, description="ask when the model's top probability is below this")
    route: str = Field(default="kimi:instant", description="the cheap, non-thinking route that answers the label")
    timeout_ms: float = Field(default=300, gt=0, le=10_000, description="past this the model's label is kept")
    min_latency_budget_ms: float = Field(default=2_000, ge=0, description="only for requests whose latency "
                                         "budget is at least this")
    max_tokens: int = Field(default=4, ge=1, le=8, description="the label answer's token cap")
    max_prompt_chars: int = Field(default=2_000, ge=200, description="the request text sent is cut to this "
                                  "(head and tail), which bounds the call's cost")


class ClassifierSettings(_Strict):
    confidence_floor: float = Field(default=0.6, ge=0, le=1)  # classifiers/model/card.json suggested floor
    fallback_task_type: str = "reasoning"
    cascade: CascadeSettings | None = Field(default=None, description="off when absent")


class ExplorationSettings(_Strict):
    """Off-policy data for tuning: a share of ``auto`` requests goes to another feasible candidate."""

    rate: float = Field(default=0.0, ge=0, le=0.5, description="share of auto requests sent to another "
                        "feasible candidate (never one over the ceiling or budget); its propensity is logged")


class Policy(_Strict):
    version: str = "1"
    name: str = "default"
    backends: dict[str, Backend]
    aliases: dict[str, str] = Field(default_factory=dict, description=(
        "extra model names -> route; a name ending in * is a family (longest prefix wins; tried after "
        "exact names and dated snapshots)"))
    tasks: dict[str, TaskRule]
    quality: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="prior quality in [0,1] per task type and route")
    quality_sources: dict[str, str] = Field(default_factory=dict, description="where each prior comes from")
    estimates: dict[str, OutputEstimate] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    objective: Objective = "cheapest_meeting_quality"
    min_quality: float = Field(default=0.0, ge=0, le=1)
    on_infeasible: Literal["reject", "best_effort"] = "reject"
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()
    engine_metrics: EngineMetricsSettings = EngineMetricsSettings()
    swarm: SwarmSettings = SwarmSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    exploration: ExplorationSettings = ExplorationSettings()
    shadow: str | None = Field(default=None, description="a candidate policy file decided next to this one "
                               "after each answer (never dispatched); relative to this file")

    @cached_property
    def routes(self) -> dict[str, tuple[str, str]]:
        """Every route of an enabled backend: name -> (backend, mode)."""
        table: dict[str, tuple[str, str]] = {f"{name}:{mode}": (name, mode)
                 for name, backend in self.backends.items() if backend.enabled
                 for mode in backend.modes}
        return table

    def resolve_model(self, model: str) -> str | None:
        """A client's ``model`` value as a route name (or ``swarm``), if it names one."""
        if model in self.routes or (model == taxonomy.SWARM_ROUTE and self.swarm.enabled):
            return model
        target = self.aliases.get(model)
        if target is None:
            # A vendor's dated snapshot names its alias plus a date (Anthropic claude-sonnet-4-5-20250929,
            # OpenAI gpt-5-mini-2025-08-07): coding agents send those by default, so they resolve as
            # the alias does. Only on a miss: an exact route or alias always wins.
            undated = _SNAPSHOT_DATE.sub("", model)
            target = self.aliases.get(undated) if undated != model else None
        if target is None:
            # A family alias (``claude-*``): the longest matching prefix, for the names an agent sends
            # that nobody listed (Claude Code's background haiku, a newer snapshot).
            target = next((t for prefix, t in self.alias_families if model.startswith(prefix)), None)
        if target is not None and (target in self.routes or target == taxonomy.SWARM_ROUTE):
            return target
        return None

    @cached_property
    def alias_families(self) -> tuple[tuple[str, str], ...]:
        """The aliases ending in ``*`` as (prefix, route), longest prefix first."""
        families = [(alias[:-1], route) for alias, route in self.aliases.items() if alias.endswith("*")]
        return tuple(sorted(families, key=lambda pair: -len(pair[0])))

    @property
    def listed_aliases(self) -> list[str]:
        """The aliases a client can name as they are (``/v1/models``): servable, not a family pattern."""
        return [a for a in self.aliases if not a.endswith("*") and self.resolve_model(a) is not None]
