"""Carry out a decision: try the chosen route, retry what is retryable, fall back down the chain.

Guards: a circuit breaker per backend, a concurrency cap per backend, retries with backoff that
honour ``retry-after``, the cost ceiling enforced by capping output tokens with what is left of
the money, and — for streams — fallback as long as nothing has been sent to the client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from router import errors
from router.dispatch.modes import upstream_body
from router.dispatch.upstream import UpstreamCall, UpstreamClient, UpstreamError, Usage
from router.engine.decide import Candidate
from router.engine.live import LiveState
from router.engine.request_facts import RequestFacts
from router.observability.metrics import CIRCUIT_STATE_VALUE, RouterMetrics
from router.observability.tracing import Tracer
from router.policy.loader import LoadedPolicy
from router.policy.model import Backend


@dataclass(slots=True)
class AttemptLog:
    """What happened on the way to an answer (for headers, the router object, metrics)."""

    failed: int = 0
    errors: list[str] = field(default_factory=list)
    upstream_s: float = 0.0


@dataclass(slots=True)
class Answer:
    candidate: Candidate
    response: dict[str, Any]
    usage: Usage
    cost_usd: float
    log: AttemptLog


@dataclass(slots=True)
class OpenStream:
    candidate: Candidate
    first_chunk: dict[str, Any]
    rest: AsyncIterator[dict[str, Any]]
    log: AttemptLog
    started_at: float
    first_at: float
    release: Callable[[bool], None]
    backend: Backend


def affordable_output_tokens(backend: Backend, facts: RequestFacts, money_left: float) -> int | None:
    """Output tokens the remaining money can pay for, or None when the ceiling does not bind."""
    price_in, _, price_out = backend.pricing.per_token_usd()
    if price_out <= 0:
        return None
    tokens = int((money_left - facts.input_tokens_upper * price_in) / price_out)
    return None if tokens >= backend.max_output_tokens else tokens


class Dispatcher:
    def __init__(self, *, clients: Callable[[Backend], UpstreamClient], live: LiveState,
                 metrics: RouterMetrics, tracer: Tracer) -> None:
        self._clients = clients
        self._live = live
        self._metrics = metrics
        self._tracer = tracer

    # --- shared per-attempt plumbing -----------------------------------------------------------
    def _prepare(self, loaded: LoadedPolicy, cand: Candidate, body: dict[str, Any], facts: RequestFacts,
                 money_left: float) -> UpstreamCall | str:
        """The call for this candidate, or the reason it is skipped."""
        backend = loaded.policy.backends[cand.backend]
        breaker = self._live.breaker(cand.backend)
        if self._live.inflight(cand.backend) >= backend.max_concurrency:
            return "capacity"
        cap = affordable_output_tokens(backend, facts, money_left)
        if cap is not None and cap < 1:
            return "cost"
        if not breaker.allow():
            return "circuit_open"
        return UpstreamCall(cand.backend, backend, loaded.keys.get(cand.backend),
                            upstream_body(body, backend, cand.mode, max_output_tokens=cap))

    def _begin(self, backend_name: str) -> None:
        self._metrics.inflight.labels(backend_name).set(self._live.add_inflight(backend_name, 1))

    def _end(self, backend_name: str, success: bool, *, record_circuit: bool = True) -> None:
        self._metrics.inflight.labels(backend_name).set(self._live.add_inflight(backend_name, -1))
        if record_circuit:
            breaker = self._live.breaker(backend_name)
            breaker.record(success)
            self._metrics.circuit_state.labels(backend_name).set(CIRCUIT_STATE_VALUE[breaker.state])

    def _failed(self, log: AttemptLog, backend_name: str, exc: UpstreamError) -> None:
        log.failed += 1
        log.errors.append(f"{backend_name}: {exc.kind}")
        self._metrics.upstream_errors.labels(backend_name, exc.kind).inc()

    @staticmethod
    async def _backoff(loaded: LoadedPolicy, attempt: int, exc: UpstreamError) -> bool:
        """Sleep before a retry; False when the route should be left instead."""
        retry = loaded.policy.retry
        if exc.retry_after_s is not None:
            if exc.retry_after_s > retry.max_retry_after_s:
                return False
            delay = exc.retry_after_s
        else:
            delay = min(retry.backoff_max_ms, retry.backoff_base_ms * 2 ** attempt) / 1000.0
            delay *= 0.5 + random.random() / 2  # jitter so retries do not stampede
        await asyncio.sleep(delay)
        return True

    def _fallback(self, chain: list[Candidate], index: int, reason: str) -> None:
        if index + 1 < len(chain):
            self._metrics.fallbacks.labels(chain[index].route, chain[index + 1].route, reason).inc()

    @staticmethod
    def _exhausted(log: AttemptLog, kinds: list[str], retry_afters: list[float]) -> errors.RouterError:
        tried = "; ".join(log.errors) or "no route could be tried"
        if kinds and all(k == "rate_limited" for k in kinds):
            return errors.RateLimited(f"Every route is rate limited ({tried}).",
                                      retry_after_s=min(retry_afters) if retry_afters else 1.0)
        if kinds and kinds[-1] == "timeout":
            return errors.UpstreamTimedOut(f"The upstream did not answer in time ({tried}).")
        if not kinds:
            return errors.Unavailable(f"No route is available right now ({tried}).",
                                      headers={"retry-after": "1"})
        return errors.UpstreamFailed(f"Every route failed ({tried}).")

    # --- non-streaming ---------------------------------------------------------------------------
    async def complete(self, loaded: LoadedPolicy, chain: list[Candidate], body: dict[str, Any],
                       facts: RequestFacts, money: float) -> Answer:
        log = AttemptLog()
        kinds: list[str] = []
        retry_afters: list[float] = []
        for index, cand in enumerate(chain):
            reason = "http_5xx"
            for attempt in range(loaded.policy.retry.attempts_per_route):
                prepared = self._prepare(loaded, cand, body, facts, money)
                if isinstance(prepared, str):
                    log.errors.append(f"{cand.backend}: {prepared}")
                    reason = prepared
                    break
                client = self._clients(prepared.backend)
                self._begin(cand.backend)
                started = time.perf_counter()
                with self._tracer.upstream_span(cand, prepared) as span:
                    try:
                        response = await client.complete(prepared)
                    except UpstreamError as exc:
                        log.upstream_s += time.perf_counter() - started
                        self._end(cand.backend, False, record_circuit=not exc.client_fault)
                        span.failed(exc.kind)
                        if exc.client_fault:
                            raise errors.InvalidRequest(f"The upstream rejected the request: {exc.message}") from None
                        self._failed(log, cand.backend, exc)
                        kinds.append(exc.kind)
                        if exc.retry_after_s is not None:
                            retry_afters.append(exc.retry_after_s)
                        reason = exc.kind
                        if exc.retryable and attempt + 1 < loaded.policy.retry.attempts_per_route \
                                and await self._backoff(loaded, attempt, exc):
                            continue
                        break
                    except BaseException:
                        self._end(cand.backend, True, record_circuit=False)
                        raise
                    elapsed = time.perf_counter() - started
                    log.upstream_s += elapsed
                    self._end(cand.backend, True)
                    usage = Usage.from_openai(response.get("usage"))
                    cost = usage.cost_usd(prepared.backend)
                    span.succeeded(response.get("model"), usage, cost)
                self._metrics.upstream_duration.labels(cand.backend).observe(elapsed)
                generation_s = usage.output_tokens / self._live.route(cand.route).output_tokens_per_s
                self._live.observe_latency(cand.route, ttft_ms=max(0.0, elapsed - generation_s) * 1000,
                                           output_tokens=0, generation_s=None)
                return Answer(cand, response, usage, cost, log)
            self._fallback(chain, index, reason)
        raise self._exhausted(log, kinds, retry_afters)

    # --- streaming -------------------------------------------------------------------------------
    async def open_stream(self, loaded: LoadedPolicy, chain: list[Candidate], body: dict[str, Any],
                          facts: RequestFacts, money: float) -> OpenStream:
        """Walk the chain until a route produces its first chunk; nothing is sent before that."""
        log = AttemptLog()
        kinds: list[str] = []
        retry_afters: list[float] = []
        for index, cand in enumerate(chain):
            reason = "http_5xx"
            for attempt in range(loaded.policy.retry.attempts_per_route):
                prepared = self._prepare(loaded, cand, body, facts, money)
                if isinstance(prepared, str):
                    log.errors.append(f"{cand.backend}: {prepared}")
                    reason = prepared
                    break
                client = self._clients(prepared.backend)
                self._begin(cand.backend)
                started = time.perf_counter()
                stream = client.stream(prepared)
                try:
                    first = await stream.__anext__()
                except (UpstreamError, StopAsyncIteration) as raw_exc:
                    exc = raw_exc if isinstance(raw_exc, UpstreamError) else UpstreamError("protocol", "empty")
                    log.upstream_s += time.perf_counter() - started
                    self._end(cand.backend, False, record_circuit=not exc.client_fault)
                    self._tracer.failed_attempt(cand, prepared, exc.kind, started)
                    if exc.client_fault:
                        raise errors.InvalidRequest(f"The upstream rejected the request: {exc.message}") from None
                    self._failed(log, cand.backend, exc)
                    kinds.append(exc.kind)
                    if exc.retry_after_s is not None:
                        retry_afters.append(exc.retry_after_s)
                    reason = exc.kind
                    if exc.retryable and attempt + 1 < loaded.policy.retry.attempts_per_route \
                            and await self._backoff(loaded, attempt, exc):
                        continue
                    break
                except BaseException:
                    await stream.aclose()
                    self._end(cand.backend, True, record_circuit=False)
                    raise
                backend_name = cand.backend

                def release(success: bool, _name: str = backend_name) -> None:
                    self._end(_name, success)

                return OpenStream(cand, first, stream, log, started, time.perf_counter(), release,
                                  prepared.backend)
            self._fallback(chain, index, reason)
        raise self._exhausted(log, kinds, retry_afters)

    def observe_stream(self, opened: OpenStream, usage: Usage, ended_at: float) -> None:
        ttft_ms = (opened.first_at - opened.started_at) * 1000
        self._live.observe_latency(opened.candidate.route, ttft_ms=ttft_ms, output_tokens=usage.output_tokens,
                                   generation_s=ended_at - opened.first_at)
        self._metrics.upstream_duration.labels(opened.candidate.backend).observe(ended_at - opened.started_at)

    def upstream_failed_mid_stream(self, opened: OpenStream, exc: UpstreamError) -> None:
        self._failed(opened.log, opened.candidate.backend, exc)
