"""What the decision needs to know about the world right now, as plain immutable values.

The live implementation (``router.engine.live.LiveState``) fills these from observed traffic,
circuit breakers and the engine-queue scraper; ``PriorSignals`` serves the policy's priors alone
(dry runs from the CLI, replaying a decision).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from router.policy.model import Policy


@dataclass(frozen=True, slots=True)
class RouteSignals:
    ttft_ms: float
    output_tokens_per_s: float


@dataclass(frozen=True, slots=True)
class BackendSignals:
    circuit: str = "closed"          # closed | half_open | open
    inflight: int = 0
    queue_waiting: float | None = None  # self-hosted engine queue depth, when scraped
    queue_wait_ms: float = 0.0       # expected extra wait before the engine starts our request


class Signals(Protocol):
    def route(self, route: str) -> RouteSignals: ...

    def backend(self, backend: str) -> BackendSignals: ...


class PriorSignals:
    """The policy's seeded latency priors, every circuit closed, no load."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    def route(self, route: str) -> RouteSignals:
        backend = self._policy.backends[route.partition(":")[0]]
        return RouteSignals(backend.latency.ttft_ms, backend.latency.output_tokens_per_s)

    def backend(self, backend: str) -> BackendSignals:
        return BackendSignals()
