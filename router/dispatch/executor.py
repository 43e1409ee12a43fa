"""Carry out a decision: try the chosen route, retry what is retryable, fall back down the chain.

Guards, in the order an attempt meets them:
- money: each attempt may spend only what is left of the ceiling (``money`` minus what failed
  attempts may have cost), enforced by capping ``max_tokens``; a route whose estimate no longer
  fits is skipped;
- time: a retry or fallback whose estimated latency no longer fits before ``deadline`` is skipped,
  and no backoff (nor honoured ``retry-after``) sleeps past it; ``retry-after`` longer than
  ``retry.max_retry_after_s`` means "leave this route";
- capacity: at most ``max_concurrency`` requests in flight per backend;
- the circuit breaker of the backend (an open circuit is skipped; half-open admits a few probes).
One loop (``_walk``) carries out both JSON answers and streams; only the single try differs.
Streams fall back as long as nothing has been sent: chunks with no content (the role-only opener)
are held back until the first chunk that carries something, so a stream that dies before its first
token still moves on to the next route.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from router import errors
from router.dispatch.anthropic import event_has_payload, passthrough_body
from router.dispatch.deadline import TaskDeadline
from router.dispatch.modes import build_request
from router.dispatch.relay import ready_now
from router.dispatch.upstream import NativeRequest, UpstreamCall, UpstreamClient, UpstreamError, Usage
from router.engine.circuit import Ticket
from router.engine.decide import Candidate
from router.engine.live import LiveState
from router.engine.request_facts import RequestFacts
from router.observability.metrics import CIRCUIT_STATE_VALUE, RouterMetrics
from router.observability.tracing import Tracer
from router.policy.loader import LoadedPolicy
from router.policy.model import Backend

# Failures after which the upstream may have done (and billed) the prompt's prefill: the money
# left for the next attempt is reduced by the prompt's upper-bound input cost.
_MAY_HAVE_BILLED = frozenset({"timeout", "mid_stream"})


@dataclass(slots=True)
class AttemptLog:
    """What happened on the way to an answer (for headers, the router object, metrics)."""

    failed: int = 0
    errors: list[str] = field(default_factory=list)
    upstream_s: float = 0.0
    spent_usd: float = 0.0  # what failed attempts may have cost (charged against the ceiling)
    kinds: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    retry_afters: list[float] = field(default_factory=list)
    # Failures whose verdict waits for the rest of the walk (see ``UpstreamError.follows_request``).
    pending: list[tuple[str, Ticket]] = field(default_factory=list)
    refused: UpstreamError | None = None  # the last route-specific refusal (its param and code)
    # The client parameters the last prepared attempt's route did not take as given, kept when the
    # cost cap left the body alone (then they are ``modes.adjusted_params``'s, which need not build
    # the body a second time for the router object); None: not known.
    adjusted: tuple[str, ...] | None = None

    def skip(self, cand: Candidate, reason: str) -> str:
        """Note a route that was not tried (capacity, circuit, money, time); returns the reason."""
        self.errors.append(f"{cand.route}: skipped ({reason})")
        self.skipped.append(reason)
        return reason


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
    rest: ChunkStream
    log: AttemptLog
    started_at: float
    first_at: float
    release: Callable[[bool | None], None]  # True ok, False failed, None: no verdict (client left)
    backend: Backend
    native: bool = False  # hook: the chunks are Anthropic events of a native /v1/messages call


_T = TypeVar("_T")


@dataclass(slots=True)
class _Try:
    """One attempt in flight: its candidate, call, circuit ticket, start time and the request's log."""

    cand: Candidate
    call: UpstreamCall
    ticket: Ticket
    started: float
    log: AttemptLog
    settled: bool = False  # the circuit verdict and in-flight count were settled (exactly once)


_AttemptFn = Callable[[_Try], Awaitable[_T]]


def affordable_output_tokens(backend: Backend, facts: RequestFacts, money_left: float) -> int | None:
    """Output tokens the remaining money can pay for, or None when the ceiling does not bind."""
    price_in, _, price_out = backend.pricing.per_token_usd()
    if price_out <= 0:
        return None
    tokens = int((money_left - facts.input_tokens_upper * price_in) / price_out)
    return None if tokens >= backend.max_output_tokens else tokens


def _has_payload(chunk: dict[str, Any]) -> bool:
    """Does this chunk carry anything a client would see beyond the role-only opener?"""
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and (delta.get("content") or delta.get("reasoning_content")
                                        or delta.get("tool_calls") or delta.get("refusal")
                                        or delta.get("function_call")):
            return True
    return False


class ChunkStream(Protocol):
    """The rest of an upstream stream: iterate it, and ``aclose()`` it to close the upstream call."""

    def __aiter__(self) -> ChunkStream: ...

    async def __anext__(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class _Replay:
    """The chunks held back while waiting for the first token, then the rest of the stream.

    A class rather than an async generator so that ``aclose()`` closes the upstream call even
    when iteration never started (a client that leaves right after the first chunk).
    """

    __slots__ = ("_held", "_stream")

    def __init__(self, held: list[dict[str, Any]], stream: AsyncGenerator[dict[str, Any], None]) -> None:
        self._held = deque(held)
        self._stream = stream

    def __aiter__(self) -> _Replay:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._held:
            return self._held.popleft()
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        self._held.clear()
        await self._stream.aclose()

    def ready(self) -> bool:  # frame coalescing asks whether the next chunk is in memory (relay.ready_now)
        return bool(self._held) or ready_now(self._stream)


def attempt_timeout_s(loaded: LoadedPolicy, backend: Backend, cand: Candidate, floor_s: float | None = None) -> float:
    """How long this attempt may take before it counts as a timeout (and the chain moves on).

    At most the backend's ``timeout_s``; and ``attempt_timeout_factor`` x the route's live estimate,
    never below ``floor_s`` (the route's learned hang floor, else ``first_token_timeout_s``) — so a
    hung upstream is left while a fallback can still answer, but a slow answer is not cut. The
    latency budget is a target, not a kill switch.
    """
    factor = loaded.policy.retry.attempt_timeout_factor
    if factor <= 0:
        return backend.timeout_s
    floor = backend.first_token_timeout_s if floor_s is None else floor_s
    return min(backend.timeout_s, max(floor, factor * cand.latency_ms / 1000))


class Dispatcher:
    def __init__(self, *, clients: Callable[[Backend], UpstreamClient], live: LiveState,
                 metrics: RouterMetrics, tracer: Tracer) -> None:
        self._clients = clients
        self._live = live
        self._metrics = metrics
        self._tracer = tracer

    # --- shared per-attempt plumbing -----------------------------------------------------------
    def _prepare(self, log: AttemptLog, loaded: LoadedPolicy, cand: Candidate, body: dict[str, Any],
                 facts: RequestFacts, money_left: float, deadline: float | None, first: bool,
                 stream: bool, native: NativeRequest | None = None) -> tuple[UpstreamCall, Ticket] | str:
        """The call for this candidate and its circuit ticket, or the reason it is skipped."""
        backend = loaded.policy.backends[cand.backend]
        if self._live.inflight(cand.backend) >= backend.max_concurrency:
            return "capacity"
        if not first:  # the decision checked the first attempt; later ones live on what is left
            if cand.cost_usd > money_left:
                return "cost"
            if deadline is not None and cand.latency_ms > (deadline - time.perf_counter()) * 1000:
                return "latency"
        cap = affordable_output_tokens(backend, facts, money_left)
        if cap is not None and cap < 1:
            return "cost"
        ticket = self._live.breaker(cand.backend).acquire()
        if ticket is None:
            return "circuit_open"
        floor = self._live.hang_floor_s(cand.route, loaded.policy.retry, backend.first_token_timeout_s,
                                        stream=stream)
        built = build_request(body, backend, cand.mode, max_output_tokens=cap, deadline=deadline)
        adapted = built.body
        # The cap can change what is adjusted (Claude's thinking needs room); the deadline cannot.
        log.adjusted = built.adjusted if cap is None else None
        call = UpstreamCall(cand.backend, backend, loaded.keys.get(cand.backend), adapted,
                            timeout_s=attempt_timeout_s(loaded, backend, cand, None if stream else floor),
                            first_token_s=floor,
                            native=passthrough_body(native, adapted, backend))  # hook: /v1/messages → Claude as is
        return call, ticket

    def _begin(self, backend_name: str) -> None:
        self._metrics.inflight.labels(backend_name).set(self._live.add_inflight(backend_name, 1))

    def _end(self, backend_name: str, ticket: Ticket, success: bool | None) -> None:
        """One attempt is over: ``success`` None means it says nothing about the backend's health."""
        self._metrics.inflight.labels(backend_name).set(self._live.add_inflight(backend_name, -1))
        self._verdict(backend_name, ticket, success)

    def _verdict(self, backend_name: str, ticket: Ticket, success: bool | None) -> None:
        breaker = self._live.breaker(backend_name)
        if success is None:
            breaker.cancel(ticket)
        else:
            breaker.record(success, ticket)
        self._metrics.circuit_state.labels(backend_name).set(CIRCUIT_STATE_VALUE[breaker.state])

    def _settle(self, t: _Try, success: bool | None) -> None:
        t.settled = True
        self._end(t.cand.backend, t.ticket, success)

    def _defer(self, t: _Try) -> None:
        """The attempt is over, but whether it was the backend's fault is decided by ``_judge``."""
        t.settled = True
        self._metrics.inflight.labels(t.cand.backend).set(self._live.add_inflight(t.cand.backend, -1))
        t.log.pending.append((t.cand.backend, t.ticket))

    def _judge(self, log: AttemptLog, outcome: str) -> None:
        """Settle the deferred failures once the walk is over.

        ``answered``: another backend served the same body, so the failures were the backends'.
        ``exhausted``: when two or more backends failed alike on this body, the failure followed the
        request and is charged to none of them (three bad requests must not open every circuit);
        one backend alone is charged. ``rejected`` (a later upstream refused the content) and
        ``cancelled`` say nothing about the backends.
        """
        pending, log.pending = log.pending, []
        if not pending:
            return
        followed = outcome in ("rejected", "cancelled") or (
            outcome == "exhausted" and len({name for name, _ in pending}) >= 2)
        for name, ticket in pending:
            self._verdict(name, ticket, None if followed else False)

    def _failed(self, log: AttemptLog, cand: Candidate, backend: Backend, facts: RequestFacts | None,
                exc: UpstreamError) -> None:
        log.failed += 1
        log.errors.append(f"{cand.route}: {exc.kind}")
        log.kinds.append(exc.kind)
        if exc.retry_after_s is not None:
            log.retry_afters.append(exc.retry_after_s)
        if facts is not None and exc.kind in _MAY_HAVE_BILLED:
            log.spent_usd += facts.input_tokens_upper * backend.pricing.per_token_usd()[0]
        self._metrics.upstream_errors.labels(cand.backend, exc.kind).inc()

    @staticmethod
    async def _backoff(loaded: LoadedPolicy, attempt: int, exc: UpstreamError, deadline: float | None) -> bool:
        """Sleep before a retry; False when the route should be left instead."""
        retry = loaded.policy.retry
        if exc.retry_after_s is not None:
            if exc.retry_after_s > retry.max_retry_after_s:
                return False
            delay = exc.retry_after_s
        else:
            delay = min(retry.backoff_max_ms, retry.backoff_base_ms * 2 ** attempt) / 1000.0
            delay *= 0.5 + random.random() / 2  # jitter so retries do not stampede
        if deadline is not None and time.perf_counter() + delay >= deadline:
            return False
        await asyncio.sleep(delay)
        return True

    def _fallback(self, chain: list[Candidate], index: int, reason: str) -> None:
        if index + 1 < len(chain):
            self._metrics.fallbacks.labels(chain[index].route, chain[index + 1].route, reason).inc()

    @staticmethod
    def _exhausted(log: AttemptLog) -> errors.RouterError:
        err = Dispatcher._exhaustion_error(log)
        err.failed_attempts, err.upstream_s = log.failed, log.upstream_s
        return err

    @staticmethod
    def _exhaustion_error(log: AttemptLog) -> errors.RouterError:
        tried = "; ".join(log.errors) or "no route could be tried"
        kinds = log.kinds
        if kinds and all(k == "unsupported_param" for k in kinds) and log.refused is not None:
            refused = log.refused  # every route refused a parameter: the client can drop it
            return errors.InvalidRequest(f"No route accepts this request's parameters ({tried}): {refused.message}",
                                         param=refused.param, code=refused.code)
        if kinds and all(k == "rate_limited" for k in kinds):
            return errors.RateLimited(f"Every route is rate limited ({tried}).",
                                      retry_after_s=min(log.retry_afters) if log.retry_afters else 1.0)
        if kinds and (kinds[-1] == "timeout" or "latency" in log.skipped):
            return errors.UpstreamTimedOut(f"The upstream did not answer in time ({tried}).")
        if not kinds:
            if log.skipped and all(s == "cost" for s in log.skipped):
                return errors.RouteInfeasible(f"The cost ceiling cannot pay for this prompt on any route ({tried}).")
            return errors.Unavailable(f"No route is available right now ({tried}).",
                                      headers={"retry-after": "1"})
        return errors.UpstreamFailed(f"Every route failed ({tried}).")

    async def _attempt_failed(self, loaded: LoadedPolicy, t: _Try, facts: RequestFacts, exc: UpstreamError,
                              attempt: int, deadline: float | None) -> bool:
        """Account for a failed attempt; True to retry the same route (after the backoff)."""
        log = t.log
        log.upstream_s += time.perf_counter() - t.started
        if exc.client_fault:  # the upstream refused the content: no backend will take it
            self._settle(t, True)  # and it answered, so it is up
            self._judge(log, "rejected")
            raise errors.InvalidRequest(f"The upstream rejected the request: {exc.message}",
                                        param=exc.param, code=exc.code) from None
        if exc.kind == "unsupported_param":
            self._settle(t, True)  # a parameter this route cannot take: the next route may
            log.refused = exc
        elif exc.follows_request:
            self._defer(t)
        else:
            self._settle(t, False)
        self._failed(log, t.cand, t.call.backend, facts, exc)
        retry = exc.retryable and attempt + 1 < loaded.policy.retry.attempts_per_route
        return retry and await self._backoff(loaded, attempt, exc, deadline)

    # --- the attempt loop (one for JSON answers and streams) ------------------------------------
    async def _walk(self, loaded: LoadedPolicy, chain: list[Candidate], body: dict[str, Any], facts: RequestFacts,
                    money: float, deadline: float | None, attempt: _AttemptFn[_T], *, stream: bool,
                    native: NativeRequest | None = None) -> _T:
        """Try the chain in order with retries; ``attempt`` carries out one try (and raises an
        ``UpstreamError`` when it fails). Capacity, circuits, money, time, in-flight accounting,
        backoff, fallback metrics and the exhaustion error all live here, once."""
        log = AttemptLog()
        try:
            return await self._walk_chain(log, loaded, chain, body, facts, money, deadline, attempt, stream, native)
        except BaseException:
            self._judge(log, "cancelled")  # whatever is still pending (a no-op once judged)
            raise

    async def _walk_chain(self, log: AttemptLog, loaded: LoadedPolicy, chain: list[Candidate],
                          body: dict[str, Any], facts: RequestFacts, money: float, deadline: float | None,
                          attempt: _AttemptFn[_T], stream: bool, native: NativeRequest | None) -> _T:
        first = True
        for index, cand in enumerate(chain):
            reason = "http_5xx"
            for number in range(loaded.policy.retry.attempts_per_route):
                prepared = self._prepare(log, loaded, cand, body, facts, money - log.spent_usd, deadline, first, stream,
                                         native)
                if isinstance(prepared, str):
                    reason = log.skip(cand, prepared)
                    break
                first = False
                call, ticket = prepared
                self._begin(cand.backend)
                started = time.perf_counter()
                current = _Try(cand, call, ticket, started, log)
                try:
                    answer = await attempt(current)
                except UpstreamError as exc:
                    reason = exc.kind
                    if await self._attempt_failed(loaded, current, facts, exc, number, deadline):
                        continue
                    break
                except BaseException:
                    if not current.settled:
                        self._settle(current, None)
                    raise
                self._judge(log, "answered")
                return answer
            self._fallback(chain, index, reason)
        self._judge(log, "exhausted")
        raise self._exhausted(log)

    # --- non-streaming ---------------------------------------------------------------------------
    async def complete(self, loaded: LoadedPolicy, chain: list[Candidate], body: dict[str, Any],
                       facts: RequestFacts, money: float, *, deadline: float | None = None,
                       native: NativeRequest | None = None) -> Answer:
        """``money``: USD this request may spend; ``deadline``: ``time.perf_counter()`` value;
        ``native``: the client's body for routes that speak its protocol (``Routed.native``)."""
        return await self._walk(loaded, chain, body, facts, money, deadline, self._complete_once, stream=False,
                                native=native)

    async def _complete_once(self, t: _Try) -> Answer:
        cand, call = t.cand, t.call
        with self._tracer.upstream_span(cand, call) as span:
            try:
                response = await self._clients(call.backend).complete(call)
            except UpstreamError as exc:
                span.failed(exc.kind)
                raise
            elapsed = time.perf_counter() - t.started
            t.log.upstream_s += elapsed
            self._settle(t, True)
            usage = (Usage.from_anthropic(response.get("usage")) if call.native is not None  # hook: native answer
                     else Usage.from_openai(response.get("usage")))
            cost = usage.cost_usd(call.backend)
            span.succeeded(response.get("model"), usage, cost)
        self._metrics.upstream_duration.labels(cand.backend).observe(elapsed)
        self._live.observe_total(cand.route, total_ms=elapsed * 1000, output_tokens=usage.output_tokens)
        return Answer(cand, response, usage, cost, t.log)

    # --- streaming -------------------------------------------------------------------------------
    async def open_stream(self, loaded: LoadedPolicy, chain: list[Candidate], body: dict[str, Any],
                          facts: RequestFacts, money: float, *, deadline: float | None = None,
                          native: NativeRequest | None = None) -> OpenStream:
        """Walk the chain until a route produces its first token; nothing is sent before that."""
        return await self._walk(loaded, chain, body, facts, money, deadline, self._open_once, stream=True,
                                native=native)

    async def _open_once(self, t: _Try) -> OpenStream:
        cand, call = t.cand, t.call
        stream: Any = self._clients(call.backend).stream(call)  # an async generator: it has aclose()
        held: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()  # asked once: 3.11 checks the pid on each ask
        task = asyncio.current_task(loop)
        assert task is not None
        try:
            # A hung upstream must not hold the request: no first token in time is a timeout
            # (asyncio.timeout's semantics, without its coroutines: see deadline.py).
            with TaskDeadline(loop, task, call.first_token_timeout_s):
                while True:
                    chunk = await stream.__anext__()
                    held.append(chunk)
                    if event_has_payload(chunk) if call.native is not None else _has_payload(chunk):  # hook
                        break
        except (TimeoutError, UpstreamError, StopAsyncIteration) as raw:
            await stream.aclose()
            if isinstance(raw, UpstreamError):
                exc = raw
            elif isinstance(raw, TimeoutError):
                exc = UpstreamError("timeout", f"{cand.backend} sent no first token in time")
            else:
                exc = UpstreamError("protocol", f"{cand.backend} ended the stream before its first token")
            self._tracer.failed_attempt(cand, call, exc.kind, t.started)
            raise exc from None
        except BaseException:
            await stream.aclose()
            raise
        def release(success: bool | None) -> None:
            if not t.settled:
                self._settle(t, success)

        rest: ChunkStream = _Replay(held[1:], stream) if len(held) > 1 else stream
        return OpenStream(cand, held[0], rest, t.log, t.started, time.perf_counter(), release, call.backend,
                          native=call.native is not None)  # hook: Anthropic events, not chat chunks

    def observe_stream(self, opened: OpenStream, usage: Usage, ended_at: float) -> None:
        ttft_ms = (opened.first_at - opened.started_at) * 1000
        self._live.observe_latency(opened.candidate.route, ttft_ms=ttft_ms, output_tokens=usage.output_tokens,
                                   generation_s=ended_at - opened.first_at)
        self._metrics.upstream_duration.labels(opened.candidate.backend).observe(ended_at - opened.started_at)

    def upstream_failed_mid_stream(self, opened: OpenStream, exc: UpstreamError) -> None:
        self._failed(opened.log, opened.candidate, opened.backend, None, exc)

