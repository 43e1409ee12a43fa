"""The long-lived objects of one gateway process, built once in the app's lifespan.

``Services.build(settings)`` loads the policy (starting the demo upstreams when asked to, or when
no backend is configured), the classifier, the upstream clients and the background tasks.
Tests may build their own ``Services`` and hand it to ``create_app``.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.auth import ClientAuth, legacy_keys
from router.dispatch.anthropic import AnthropicClient
from router.dispatch.executor import Dispatcher
from router.dispatch.relay import OpenAIRelay
from router.dispatch.upstream import UpstreamClient
from router.engine.engine_queue import EngineQueueScraper
from router.engine.live import LiveState
from router.feedback import AnsweredRequests
from router.observability.access_log import AccessLog
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.pipeline import Classifier, Pipeline
from router.policy.loader import LoadedPolicy, load_policy_file
from router.policy.model import Backend
from router.policy.store import PolicyStore
from router.protocol import BodyLimits, set_body_limits
from router.settings import Settings
from router.swarm import Swarm
from router.tenancy import SingleTenant, TenantResolver
from router.tenants.gate import TenantGate, build_gate
from router.tenants.store import TenantStore
from router.tuning.recorder import DecisionRecorder

log = logging.getLogger("router")


def demo_env(demo: Any) -> dict[str, str]:
    """Environment that points the packaged policy at the demo upstreams."""
    return {
        "KIMI_API_BASE": demo.base_url("kimi"), "KIMI_METRICS_URL": demo.metrics_url("kimi") or "",
        "KIMI_API_KEY": "", "OPENAI_API_BASE": demo.base_url("gpt"), "OPENAI_API_KEY": "demo-key",
        "ANTHROPIC_API_BASE": demo.base_url("claude"), "ANTHROPIC_API_KEY": "demo-key",
        **({"MOONSHOT_API_BASE": demo.base_url("kimi-api"), "MOONSHOT_API_KEY": "demo-key"}
           if "kimi-api" in demo.names else {}),
        # The demo MCP tool servers for swarm sub-agents (policy swarm.tools.servers).
        "SWARM_SEARCH_MCP_URL": demo.mcp_url("search") or "",
        "SWARM_CALCULATOR_MCP_URL": demo.mcp_url("calculate") or "",
    }


class UpstreamClients:
    """One client per transport: the lean relay (OpenAI-compatible), the native Anthropic client on
    the relay's connection pool, and litellm for other providers (imported only when needed)."""

    def __init__(self) -> None:
        self.relay = OpenAIRelay()
        self.anthropic = AnthropicClient(self.relay)
        self._translated: UpstreamClient | None = None

    def for_backend(self, backend: Backend) -> UpstreamClient:
        if backend.uses_relay:
            return self.relay
        if backend.provider == "anthropic":
            return self.anthropic
        if self._translated is None:
            from router.dispatch.translated import LiteLLMClient

            self._translated = LiteLLMClient()
        return self._translated

    def warm_up(self, loaded: LoadedPolicy) -> None:
        """Import litellm at startup (not on the first request) if an enabled backend needs it."""
        for backend in loaded.policy.backends.values():
            if backend.enabled and not backend.uses_relay and backend.provider != "anthropic":
                self.for_backend(backend)

    async def aclose(self) -> None:
        await self.relay.aclose()


@dataclass
class Services:
    settings: Settings
    store: PolicyStore
    classifier: Classifier
    live: LiveState
    metrics: RouterMetrics
    tracer: Tracer
    clients: UpstreamClients
    pipeline: Pipeline
    auth: ClientAuth
    access_log: AccessLog
    demo: Any = None
    owns_demo: bool = False
    scraper: EngineQueueScraper | None = None
    tenants: TenantResolver = field(default_factory=SingleTenant)
    started: bool = field(default=False)
    recorder: DecisionRecorder = field(default=None)  # type: ignore[assignment]  # set by build()

    @classmethod
    def build(cls, settings: Settings, *, env: dict[str, str] | None = None, classifier: Classifier | None = None,
              tracer: Tracer | None = None, demo: Any = None) -> Services:
        env = dict(os.environ if env is None else env)
        set_body_limits(BodyLimits(max_messages=settings.max_messages, max_content_parts=settings.max_content_parts))
        owns_demo = False
        if settings.demo and demo is None:
            demo, owns_demo = _start_demo(settings), True
        if demo is not None:
            env.update(demo_env(demo))
        loaded = load_policy_file(Path(settings.policy_file), env=env)
        if demo is None and not loaded.policy.routes:
            log.warning("no backend is configured (set KIMI_API_BASE, OPENAI_API_KEY or ANTHROPIC_API_KEY); "
                        "starting the built-in demo upstreams")
            demo, owns_demo = _start_demo(settings), True
            env.update(demo_env(demo))
            # Read again: the live state must know the demo's routes (else none is ever recorded).
            loaded = load_policy_file(Path(settings.policy_file), env=env)
        metrics = RouterMetrics()
        live = LiveState(loaded.policy)
        def applied(lp: LoadedPolicy) -> None:
            live.apply_policy(lp.policy)
            metrics.publish_policy(lp.policy.name, lp.policy.version)  # the dashboard's policy panel

        store = PolicyStore(Path(settings.policy_file), env=env, on_change=applied,
                            on_result=lambda result: metrics.policy_reloads.labels(result).inc())
        if classifier is None:
            from router.classifier import TaskClassifier

            classifier = TaskClassifier.load()
        tracer = tracer or Tracer.from_env(record_content=settings.log_prompts)
        clients = UpstreamClients()
        clients.warm_up(store.current)
        dispatcher = Dispatcher(clients=clients.for_backend, live=live, metrics=metrics, tracer=tracer)
        access_log = AccessLog()
        pipeline = Pipeline(policies=store, classifier=classifier, live=live, dispatcher=dispatcher,
                            metrics=metrics, tracer=tracer, access_log=access_log,
                            swarm=Swarm(dispatcher=dispatcher, live=live, metrics=metrics, tracer=tracer,
                                        classifier=classifier))
        # Tenants (issue 14): keys name tenants; the gate is the tenancy hook and the pipeline's admission.
        keys = TenantStore(settings.tenants_file,
                           legacy_keys=legacy_keys(settings.client_keys, settings.client_keys_file))
        auth = ClientAuth([], directory=keys)
        tenants = build_gate(settings, auth, keys, metrics, live)
        pipeline.tenants = tenants
        recorder = DecisionRecorder(
            metrics=metrics, log_target=settings.decision_log or None, max_mb=settings.decision_log_max_mb,
            files=settings.decision_log_files, log_prompts=settings.log_prompts,
            shadow_setting=settings.shadow_policy or None, env=env,
            answered=AnsweredRequests(retention_s=settings.feedback_retention_s, max_ids=settings.feedback_max_ids))
        pipeline.accounting.recorder = recorder
        return cls(settings=settings, store=store, classifier=classifier, live=live, metrics=metrics,
                   tracer=tracer, clients=clients, pipeline=pipeline, auth=auth, access_log=access_log, demo=demo,
                   owns_demo=owns_demo, recorder=recorder, tenants=tenants)

    def _publish_policy(self) -> None:
        policy = self.store.current.policy
        self.metrics.publish_policy(policy.name, policy.version)
        for result in ("applied", "rejected"):  # series exist (at 0) before the first reload
            self.metrics.policy_reloads.labels(result)
        for backend in policy.backends:
            self.metrics.circuit_state.labels(backend).set(0)
            self.metrics.inflight.labels(backend).set(self.live.inflight(backend))

    async def start(self) -> None:
        """Background work that needs the running event loop."""
        if self.started:
            return
        self._publish_policy()
        # Everything loaded so far (litellm, the classifier, the policy) lives as long as the process:
        # move it out of the collector's sight, so full collections stay short instead of pausing
        # requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        self.store.start(self.settings.policy_reload_interval_s)
        if isinstance(self.tenants, TenantGate):
            self.tenants.store.start(self.settings.tenants_reload_interval_s)
        self.scraper = EngineQueueScraper(
            self.live, lambda: self.store.current.policy,
            on_reading=lambda name, waiting: self.metrics.engine_queue.labels(name).set(waiting or 0))
        self.scraper.start()
        self.started = True

    async def stop(self) -> None:
        await self.store.stop()
        if isinstance(self.tenants, TenantGate):
            await self.tenants.store.stop()
            await self.tenants.enforcer.state.aclose()
        if self.scraper is not None:
            await self.scraper.stop()
        await self.clients.aclose()
        self.access_log.close()
        self.recorder.close()
        self.tracer.shutdown()
        if self.demo is not None and self.owns_demo:
            self.demo.stop()
        self.started = False


def _start_demo(settings: Settings) -> Any:
    from router.demo import DemoUpstreams
    from router.demo.quality import DemoQuality
    from router.demo.runner import ALL_SPECS

    quality = DemoQuality.load(Path(settings.demo_quality), task_type_of=_demo_task_type()) \
        if settings.demo_quality else None
    demo = DemoUpstreams(list(ALL_SPECS), quality=quality)
    demo.start()
    log.info("demo upstreams: kimi %s, gpt %s, claude %s, kimi-api %s", demo.base_url("kimi"),
             demo.base_url("gpt"), demo.base_url("claude"), demo.base_url("kimi-api"))
    return demo


def _demo_task_type() -> Callable[[str], str]:
    """The demo truth's notion of a prompt's task type: the packaged classifier's top label, no floor."""
    from router.classifier import TaskClassifier

    classifier = TaskClassifier.load()  # its own instance: it is called from the demo servers' thread
    return lambda prompt: str(classifier.classify([{"role": "user", "content": prompt}]).task_type)
