"""What a swarm run hands back: the OpenAI answer, its usage and cost, and the ``router.swarm`` measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router.dispatch.executor import AttemptLog
from router.dispatch.upstream import Usage


@dataclass(slots=True)
class SwarmResult:
    response: dict[str, Any]
    usage: Usage
    cost_usd: float
    swarm: dict[str, Any]
    log: AttemptLog
