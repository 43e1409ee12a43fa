"""Every Prometheus metric the gateway exports, defined in one place.

Labels come from closed sets only (route, backend, task_type, mode, status, reason, kind,
direction) so cardinality stays bounded: never prompts, keys or user ids.

Closed label values used across the code base:
- status: ok | client_error | rate_limited | upstream_error | timeout | infeasible | cancelled
  | internal_error (a bug of ours; route/task_type/mode "none" when it struck before the decision)
- reason (rejections): context | modality | tools | mode | circuit_open | capacity | cost | latency
  | disabled | quality
- reason (fallbacks) / kind (upstream errors): http_5xx | http_4xx | rate_limited | timeout
  | connection | protocol | circuit_open | mid_stream | unsupported_param
- direction: input | output | reasoning
- reason (decision-log drops): queue_full | write_error | render_error
- shadow_route: a route of the shadow policy, or none
- tenant (issue 14): names from the tenants file, capped, else `other`; period: day | month;
  reason (tenant refusals): rate_limit_requests | rate_limit_tokens | budget | queue_timeout
  | state_unavailable; reason (rejections) also: not_allowed; outcome (queue): admitted | timeout
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from router.observability.before_collect import BeforeCollect

# Latency buckets cover a fast instant answer (tens of ms) to a long thinking/swarm run (minutes).
_REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
# The gateway's own overhead and decision time live in the sub-millisecond range.
_FAST_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
_AGENT_BUCKETS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100)
_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_EFFICIENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

CIRCUIT_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class RouterMetrics:
    """The gateway's metrics, bound to one registry (one per app, so tests stay isolated)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "router_requests_total", "Requests answered, by outcome and front door (api: chat, messages, responses).",
            ["route", "task_type", "mode", "status", "api"], registry=r)
        self.request_duration = Histogram(
            "router_request_duration_seconds", "End-to-end request duration as the client saw it.",
            ["route", "api"], buckets=_REQUEST_BUCKETS, registry=r)
        self.ttft = Histogram(
            "router_time_to_first_token_seconds", "Time from request arrival to the first streamed token.",
            ["route"], buckets=_TTFT_BUCKETS, registry=r)
        self.overhead = Histogram(
            "router_overhead_seconds", "Time the gateway itself adds: total minus time spent upstream.",
            buckets=_FAST_BUCKETS, registry=r)
        self.decision_duration = Histogram(
            "router_decision_duration_seconds", "Classification plus routing decision time.",
            buckets=_FAST_BUCKETS, registry=r)
        self.classifier_confidence = Histogram(
            "router_classifier_confidence", "Calibrated confidence of the task-type label.",
            ["task_type"], buckets=_CONFIDENCE_BUCKETS, registry=r)
        self.tokens = Counter(
            "router_tokens_total", "Tokens processed, by route and direction (input/output/reasoning).",
            ["route", "direction"], registry=r)
        self.cost = Counter(
            "router_cost_usd_total", "Actual cost in USD, from upstream usage and the policy's prices.",
            ["route"], registry=r)
        self.estimated_cost = Counter(
            "router_estimated_cost_usd_total", "Estimated cost in USD of the chosen route at decision time.",
            ["route"], registry=r)
        self.budget_outcomes = Counter(
            "router_latency_budget_total", "Answered requests by whether they met their latency budget.",
            ["route", "outcome"], registry=r)
        self.fallbacks = Counter(
            "router_fallbacks_total", "Moves from a failed route to the next one in the chain.",
            ["from_route", "to_route", "reason"], registry=r)
        self.rejections = Counter(
            "router_route_rejections_total", "Candidate routes rejected during a decision, by reason.",
            ["route", "reason"], registry=r)
        self.upstream_errors = Counter(
            "router_upstream_errors_total", "Failed upstream attempts, by backend and kind.",
            ["backend", "kind"], registry=r)
        self.upstream_duration = Histogram(
            "router_upstream_latency_seconds", "Duration of one upstream attempt.",
            ["backend"], buckets=_REQUEST_BUCKETS, registry=r)
        self.circuit_state = Gauge(
            "router_backend_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["backend"], registry=r)
        self.inflight = Gauge(
            "router_backend_inflight", "Requests in flight to each backend.", ["backend"], registry=r)
        self.engine_queue = Gauge(
            "router_backend_queue_depth", "Requests waiting in the self-hosted engine's queue (scraped).",
            ["backend"], registry=r)
        self.swarm_agents = Histogram(
            "router_swarm_agents", "Sub-agents run per swarm request.",
            buckets=_AGENT_BUCKETS, registry=r)
        self.swarm_failed_agents = Counter(
            "router_swarm_failed_agents_total", "Sub-agents that failed after their retry.", registry=r)
        self.swarm_duration = Histogram(
            "router_swarm_duration_seconds", "Wall time of a swarm run (plan, fan-out, aggregate).",
            buckets=_REQUEST_BUCKETS, registry=r)
        self.swarm_efficiency = Histogram(
            "router_swarm_parallel_efficiency", "Summed agent time / (wall time x agents that could run).",
            buckets=_EFFICIENCY_BUCKETS, registry=r)
        self.swarm_cost = Counter(
            "router_swarm_cost_usd_total", "Actual cost of swarm runs in USD.", registry=r)
        self.swarm_tool_calls = Counter(
            "router_swarm_tool_calls_total", "MCP tool calls by swarm sub-agents, by tool and outcome "
            "(ok, error, timeout, unavailable, refused).", ["tool", "status"], registry=r)
        self.swarm_agent_routes = Counter(
            "router_swarm_agent_routes_total", "Swarm sub-agents by the route each subtask was sent to.",
            ["route", "task_type"], registry=r)
        self.policy_reloads = Counter(
            "router_policy_reloads_total", "Policy reload attempts, by result.", ["result"], registry=r)
        self.policy_info = Gauge(
            "router_policy_info", "The policy in force (value 1).", ["name", "version"], registry=r)
        # --- the tuning loop: decision log, feedback, exploration, shadow policy ---
        self.decision_log_records = Counter(
            "router_decision_log_records_total", "Records written to the decision log.", registry=r)
        self.decision_log_dropped = Counter(
            "router_decision_log_dropped_total", "Decision-log records lost, by reason "
            "(queue_full | write_error | render_error).", ["reason"], registry=r)
        self.feedback = Counter(
            "router_feedback_total", "Feedback received on answers (POST /v1/feedback).",
            ["route", "task_type"], registry=r)
        self.feedback_score = Histogram(
            "router_feedback_score", "Feedback scores (thumbs up = 1, down = 0).",
            ["route", "task_type"], buckets=_SCORE_BUCKETS, registry=r)
        self.exploration = Counter(
            "router_exploration_total", "Requests sent to another feasible route by exploration.",
            ["route", "task_type"], registry=r)
        self.shadow_decisions = Counter(
            "router_shadow_decisions_total", "Shadow-policy decisions next to the live route (never dispatched).",
            ["route", "shadow_route"], registry=r)
        self.shadow_estimated_cost = Counter(
            "router_shadow_estimated_cost_usd_total", "Estimated cost of the shadow policy's choices.",
            ["shadow_route"], registry=r)
        self.shadow_live_estimated_cost = Counter(
            "router_shadow_live_estimated_cost_usd_total",
            "Estimated cost of the live choices on the same requests the shadow decided.", ["route"], registry=r)
        # --- tenants and the admission queue (issue 14); `tenant` is bounded by router.tenants.metrics
        self.before_tenants = BeforeCollect(r)  # hook: router.tenants.metrics flushes its batched counts here
        self.tenant_requests = Counter(
            "router_tenant_requests_total", "Chat requests by tenant and outcome.", ["tenant", "status"],
            registry=r)
        self.tenant_rejections = Counter(
            "router_tenant_rejections_total", "Requests refused for a tenant's limits, by reason.",
            ["tenant", "reason"], registry=r)
        self.tenant_spend = Counter(
            "router_tenant_spend_usd_total", "Actual spend in USD charged to each tenant's budget.", ["tenant"],
            registry=r)
        self.tenant_budget = Gauge(
            "router_tenant_budget_usd", "A tenant's spend budget for the period (day or month).",
            ["tenant", "period"], registry=r)
        self.tenant_budget_remaining = Gauge(
            "router_tenant_budget_remaining_usd", "What is left of a tenant's budget (spent and reserved taken "
            "off), as last seen in the shared state.", ["tenant", "period"], registry=r)
        self.tenant_state_failures = Counter(
            "router_tenant_state_failures_total", "Admissions that could not reach the shared state (Redis).",
            registry=r)
        self.admission_queue_depth = Gauge(
            "router_admission_queue_depth", "Requests waiting for a route at max_concurrency.", registry=r)
        self.admission_queue_wait = Histogram(
            "router_admission_queue_wait_seconds", "Time requests waited in the admission queue, by outcome "
            "(admitted | timeout).", ["tenant", "outcome"], buckets=_REQUEST_BUCKETS[:9], registry=r)
        # --- labelling (issue 17): which path labelled a request; the cascade for the unsure
        self.label_source = Counter(
            "router_label_source_total", "Requests by the path that labelled them "
            "(model | rule | cascade | header).", ["source"], registry=r)
        self.cascade = Counter(
            "router_cascade_total", "Cascade label calls and skips, by outcome (relabelled | confirmed | "
            "unparseable | timeout | error | over_limits | skipped_cost | skipped_latency | skipped_unavailable).",
            ["outcome"], registry=r)
        self.cascade_cost = Counter(
            "router_cascade_cost_usd_total", "Cost of cascade label calls in USD (the estimate when one timed out).",
            registry=r)
        self._memoize_children()

    def publish_policy(self, name: str, version: str) -> None:
        """``router_policy_info`` names only the policy in force (called at start and on each reload)."""
        self.policy_info.clear()
        self.policy_info.labels(name, version).set(1)

    def _memoize_children(self) -> None:
        """Put a C-speed cache in front of ``labels()`` on the per-request metrics.

        ``labels()`` validates, locks and looks up on every call (~2 µs, a dozen times per request);
        label values come from closed sets, so each child is looked up once. ``policy_info`` is left
        alone: it is cleared when the policy changes.
        """
        for metric in vars(self).values():
            if isinstance(metric, Counter | Gauge | Histogram) and metric is not self.policy_info \
                    and metric._labelnames:
                setattr(metric, "labels", functools.lru_cache(maxsize=4096)(metric.labels))  # noqa: B010
