"""Teams, keys, budgets and rate limits, shared across replicas (see README "Tenants").

``model`` (the tenants file), ``keys`` (made here, stored as hashes), ``store`` (hot reload),
``limits`` (what one key may do), ``state`` / ``redis_state`` (shared counters), ``enforce``
(admission, settlement, failure modes), ``metrics`` (bounded tenant labels), ``manage`` (the
``keys`` CLI). ``gate`` (a layer higher: it reads routed requests) is the request path's side and
``build_gate`` wires them for one process.
"""

from __future__ import annotations

from router.tenants.store import TenantsError

__all__ = ["TenantsError"]
