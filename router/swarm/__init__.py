"""Swarm mode: the gateway plans, runs sub-agents in parallel and aggregates (see README.md)."""

from router.swarm.runner import Swarm
from router.swarm.stream import SwarmStream

__all__ = ["Swarm", "SwarmStream"]
