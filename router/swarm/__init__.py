"""Swarm mode: the gateway plans, runs sub-agents in parallel and aggregates (see README.md)."""

from router.swarm.runner import Swarm, SwarmStream

__all__ = ["Swarm", "SwarmStream"]
