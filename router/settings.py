"""Process settings, read once from the environment (prefix ``ROUTER_``) and passed down as values."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


class Settings(BaseSettings):
    """One process serves with one uvicorn worker (one event loop); scale out with more processes or
    replicas, each with its own live state and circuits."""

    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    policy_file: Path = PACKAGED_POLICY
    policy_reload_interval_s: float = Field(default=2.0, ge=0, description="0 disables hot reload")
    # Start the simulated upstreams and point the policy at them (also the fallback when no
    # backend is configured).
    demo: bool = False
    client_keys: str = Field(default="", description="comma-separated bearer keys; empty = auth off")
    client_keys_file: Path | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    log_level: str = "info"
    log_prompts: bool = Field(default=False, description="opt-in: put prompt/answer text in spans")
    # Hardening (issue 12): request shape caps, connection reaping, shutdown drain.
    max_messages: int = Field(default=2048, ge=1, description="more messages: 413")
    max_content_parts: int = Field(default=4096, ge=1, description="more content parts (summed): 413")
    header_timeout_s: float = Field(default=10.0, gt=0, description="request line + headers must arrive within this")
    body_timeout_s: float = Field(default=30.0, gt=0, description="the whole body within this after the headers")
    keep_alive_s: float = Field(default=5.0, gt=0, description="an idle kept-alive connection is closed after this")
    max_connections: int = Field(default=0, ge=0, description="0: RLIMIT_NOFILE minus headroom")
    shutdown_grace_s: float = Field(default=30.0, ge=0, description="SIGTERM: in-flight requests get this long")

    # --- the tuning loop (decision log, feedback, shadow policy) ---
    decision_log: str = Field(default="", description="JSONL path for one record per request; '-' = stdout; "
                              "empty = off")
    decision_log_max_mb: float = Field(default=100, gt=0, description="rotate the decision log at this size")
    decision_log_files: int = Field(default=10, ge=1, description="decision-log files kept (current + rotated)")
    feedback_retention_s: float = Field(default=7 * 86_400, gt=0, description="feedback accepted this long "
                                        "after the answer")
    feedback_max_ids: int = Field(default=200_000, gt=0, description="answered request ids kept for feedback")
    shadow_policy: str = Field(default="", description="a candidate policy decided next to the live one; "
                               "overrides the policy's shadow:")
    demo_quality: str = Field(default="", description="demo upstreams: YAML {task_type: {route: mean}} of latent "
                              "answer quality (the demo truth)")
    # Issue 13: stored Responses (previous_response_id, GET/DELETE /v1/responses/{id}).
    responses_ttl_s: float = Field(default=86_400.0, gt=0, description="how long a stored response is kept")
    responses_store_max_entries: int = Field(default=10_000, ge=1, description="in-process store: entries")
    responses_store_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1, description="in-process store: bytes")
    # --- tenants, shared state and the admission queue (issue 14; see router/tenants/) -------------
    tenants_file: Path | None = Field(default=None, description="YAML tenants file (keys stored as hashes)")
    tenants_reload_interval_s: float = Field(default=2.0, ge=0, description="0 disables hot reload")
    redis_url: str = Field(default="", description="tenant counters, stored Responses; empty = in-process")
    redis_password: str = Field(default="", description="if not in the URL (the chart passes it from a Secret)")
    redis_timeout_s: float = Field(default=1.0, gt=0, description="per call; a timeout counts as unreachable")
    redis_failure_budgets: Literal["open", "closed"] = "closed"
    redis_failure_rate_limits: Literal["open", "closed"] = "open"
    replicas: int = Field(default=1, ge=1, description="set by the chart: >1 with budgets needs redis_url")
    queue_timeout_s: float = Field(default=10.0, ge=0, description="longest wait for a route at capacity")
    queue_max_depth: int = Field(default=1024, ge=0)
    tenant_label_cap: int = Field(default=100, ge=1, description="tenant label values beyond this are 'other'")
