"""The tenants file: teams, their keys (stored as hashes only) and their limits.

    tenants:
      search:
        priority: high                 # high | normal | low: order in the admission queue
        metadata: {team: search, owner: alice@example.com}
        rpm: 600                       # requests per minute (sliding window)
        tpm: 200000                    # tokens per minute
        daily_budget_usd: 50
        monthly_budget_usd: 1000
        self_hosted_spend: counted     # or exempt: self-hosted (GPU-hour priced) routes cost nothing here
        max_cost_usd: {default: 0.05, max: 0.5}         # per request
        latency_budget_ms: {default: 30000, max: 120000}
        allowed_models: [auto, auto:instant, kimi-k2.5]  # what `model` may name (absent: anything)
        allowed_routes: [kimi, gpt:default]             # a backend or a route (absent: any)
        allowed_modes: [instant, thinking]              # absent: any
        swarm: {max_agents: 8, max_concurrent: 4}
        keys:
          - id: key_5b1e09c3d2a4f687      # random, not derived from the key or its hash
            sha256: 9f86d0...             # the key's SHA-256; the key itself is never stored
            name: ci
            created_at: "2026-12-03T09:00:00Z"
            revoked_at: null
            rpm: 60                       # a key may narrow any limit of its tenant

Every limit is optional; a key's own value, when given, is used for that key instead of its
tenant's (rates and budgets of a key are counted for the key *and* for its tenant).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from router import taxonomy

PRIORITY_CLASSES: dict[str, int] = {"high": 0, "normal": 1, "low": 2}
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
KEY_ID = re.compile(r"^key_[0-9a-f]{16}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ceiling(_Strict):
    """A per-request control: the value used when the client gives none, and the most it may ask."""

    default: float | None = Field(default=None, gt=0)
    max: float | None = Field(default=None, gt=0)


class SwarmCaps(_Strict):
    max_agents: int | None = Field(default=None, ge=1, le=100)
    max_concurrent: int | None = Field(default=None, ge=1)


class LimitFields(_Strict):
    """Limits shared by a tenant and (as narrower overrides) its keys."""

    rpm: int | None = Field(default=None, ge=0, description="requests per minute")
    tpm: int | None = Field(default=None, ge=0, description="tokens (input + output) per minute")
    daily_budget_usd: float | None = Field(default=None, ge=0)
    monthly_budget_usd: float | None = Field(default=None, ge=0)
    max_cost_usd: Ceiling | None = None
    latency_budget_ms: Ceiling | None = None
    allowed_models: list[str] | None = None
    allowed_routes: list[str] | None = None
    allowed_modes: list[str] | None = None
    swarm: SwarmCaps | None = None

    @field_validator("allowed_modes")
    @classmethod
    def _known_modes(cls, value: list[str] | None) -> list[str] | None:
        for mode in value or ():
            if mode not in taxonomy.MODES:
                raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(taxonomy.MODES)}")
        return value


class KeyEntry(LimitFields):
    id: str
    sha256: str
    name: str | None = None
    created_at: str | None = None
    revoked_at: str | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not KEY_ID.match(value):
            raise ValueError("a key id is 'key_' and 16 hex digits")
        return value

    @field_validator("sha256")
    @classmethod
    def _hash_shape(cls, value: str) -> str:
        if not SHA256_HEX.match(value):
            raise ValueError("sha256 must be 64 lower-case hex digits (the key's hash, never the key)")
        return value

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class Tenant(LimitFields):
    priority: Literal["high", "normal", "low"] = "normal"
    metadata: dict[str, str] = Field(default_factory=dict)
    self_hosted_spend: Literal["counted", "exempt"] = "counted"
    keys: list[KeyEntry] = Field(default_factory=list)


class TenantsFile(_Strict):
    tenants: dict[str, Tenant] = Field(default_factory=dict)

    @field_validator("tenants")
    @classmethod
    def _names_and_unique_keys(cls, value: dict[str, Tenant]) -> dict[str, Tenant]:
        seen_ids: set[str] = set()
        seen_hashes: set[str] = set()
        for name, tenant in value.items():
            if not TENANT_NAME.match(name) or name == "other":
                raise ValueError(f"tenant name {name!r}: letters, digits, '_', '.', '-' (and not 'other')")
            for key in tenant.keys:
                if key.id in seen_ids:
                    raise ValueError(f"key id {key.id} appears twice")
                if key.sha256 in seen_hashes:
                    raise ValueError(f"tenant {name}: a key hash appears twice")  # never echo the hash
                seen_ids.add(key.id)
                seen_hashes.add(key.sha256)
        return value
