"""Swarm mode: the gateway plans, runs sub-agents in parallel and aggregates (see README.md)."""

from router.swarm.result import SwarmResult
from router.swarm.runner import Swarm
from router.swarm.stream import SwarmStream

__all__ = ["Swarm", "SwarmResult", "SwarmStream"]
