"""Streamed answers: an upstream's chunks (after fallbacks) or a swarm's, through a door's renderer.

Each generator hands the renderer the chunks that carry choices — every one stamped with the same
``id``, ``model`` and ``created`` — collects usage, and when the stream ends (finished, failed
mid-way or abandoned by the client) releases the route, records the attempt and accounts for the
request, then says on the ``AnswerStream`` how it ended and sends the renderer's closing bytes.

Frames are coalesced, never delayed: while the upstream's next chunk is already in memory
(``relay.ready_now``), a frame waits for it and both go out in one write; a frame whose successor is
still on the network is sent at once — so a burst costs one send, and a lone token no latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from router import errors, sse, taxonomy
from router.dispatch.anthropic import usage_after_event
from router.dispatch.executor import Dispatcher, OpenStream
from router.dispatch.upstream import UpstreamError, Usage
from router.exchange import AnswerStream, Routed, StreamRenderer
from router.observability.tracing import Tracer
from router.pipeline.accounting import Accounting
from router.swarm import SwarmStream

log = logging.getLogger("router")

_MAX_PENDING = 64 << 10  # a burst bigger than this goes out in several writes: the client sees progress


def _identity(routed: Routed, first: dict[str, Any], model: str) -> tuple[Any, Any, Any]:
    """(id, model, created) for every chunk of a stream: the first chunk's, filled in where it has none."""
    return (first.get("id") or f"chatcmpl-{routed.request_id}", first.get("model") or model,
            first.get("created") or int(time.time()))


async def upstream_frames(routed: Routed, opened: OpenStream, out: AnswerStream, renderer: StreamRenderer, *,
                          dispatcher: Dispatcher, tracer: Tracer,
                          accounting: Accounting) -> AsyncGenerator[bytes, None]:
    cand = opened.candidate
    backend = opened.backend
    usage = Usage()
    status = "ok"
    ttft_s: float | None = None
    ended_at = opened.first_at
    error_kind: str | None = None
    chunk_id, model, created = _identity(routed, opened.first_chunk, backend.model)
    chunk: dict[str, Any] | None = opened.first_chunk
    cost = 0.0
    rest = opened.rest
    following = rest.__anext__  # bound once: awaited once per chunk
    ready = getattr(rest, "ready", None)  # see relay.ready_now; looked up once, asked once per frame
    # Frames whose next chunk is already in memory: sent together with it, in one write (a
    # bytearray: a burst of frames is appended to in place, not copied once per frame).
    pending = bytearray()
    try:
        while chunk is not None:
            if opened.native:  # hook: an Anthropic event of a native /v1/messages call, passed on as is
                usage = usage_after_event(chunk, usage)
                ttft_s = time.perf_counter() - routed.arrived if ttft_s is None else ttft_s
                pending += renderer.chunk(chunk)
            else:
                reported = chunk.pop("usage", None)
                if reported:
                    usage = Usage.from_openai(reported)
                if chunk.get("choices"):  # usage-only chunks end here; the door renders usage its own way
                    if ttft_s is None:
                        ttft_s = time.perf_counter() - routed.arrived
                    chunk["id"], chunk["model"], chunk["created"] = chunk_id, model, created
                    pending += renderer.chunk(chunk)
            # A frame is never held while the upstream is awaited, nor held past _MAX_PENDING bytes.
            if pending and (len(pending) >= _MAX_PENDING or ready is None or not ready()):
                yield bytes(pending)
                pending.clear()
            try:
                chunk = await following()
            except StopAsyncIteration:
                chunk = None
        ended_at = time.perf_counter()
    except UpstreamError as exc:
        status, error_kind = "upstream_error", exc.kind
        dispatcher.upstream_failed_mid_stream(opened, exc)
        out.error = errors.UpstreamFailed(f"The upstream failed mid-stream ({exc.kind}); the answer is incomplete.")
    except Exception:  # a bug of ours: still an ending in the protocol's shape, and counted as such
        log.exception("unexpected error relaying a stream")
        status, error_kind = "internal_error", "internal_error"
        out.error = errors.RouterError("The gateway hit an internal error; it has been logged.")
    except BaseException:
        status = "cancelled"  # the client went away: closing `rest` closed the upstream call
        raise
    finally:
        await opened.rest.aclose()
        # A leaving client, or a bug of ours, is no verdict on the backend.
        opened.release(None if status in ("cancelled", "internal_error") else status == "ok")
        cost = usage.cost_usd(backend)
        if status == "ok":
            dispatcher.observe_stream(opened, usage, ended_at)
        tracer.finished_stream(cand, backend, model, usage, cost, opened.started_at, error_kind,
                               parent=routed.trace)
        accounting.finished(routed, route=cand.route, mode=cand.mode, status=status, usage=usage, cost=cost,
                            upstream_s=opened.log.upstream_s + time.perf_counter() - opened.started_at,
                            fallbacks=opened.log.failed, ttft_s=ttft_s)
    out.usage = usage
    if status == "ok":
        out.router = routed.router_object(route=cand.route, mode=cand.mode, fallbacks=opened.log.failed,
                                          cost_usd=cost, known_adjusted=opened.log.adjusted)
    yield sse.Last(bytes(pending) + renderer.end(out))  # what was held when the stream ended or broke, then the end


async def swarm_frames(routed: Routed, swarm_stream: SwarmStream, out: AnswerStream, renderer: StreamRenderer, *,
                       accounting: Accounting) -> AsyncGenerator[bytes, None]:
    status = "ok"
    identity: tuple[Any, Any, Any] | None = None
    try:
        async for chunk in swarm_stream.chunks:
            if identity is None:
                identity = _identity(routed, chunk, taxonomy.SWARM_ROUTE)
            chunk["id"], chunk["model"], chunk["created"] = identity
            frame = renderer.chunk(chunk)
            if frame:
                yield frame
    except errors.RouterError as exc:
        status = "upstream_error"
        out.error = exc
    except BaseException:
        status = "cancelled"
        raise
    finally:
        await swarm_stream.chunks.aclose()  # cancels the run if the client left
        result = swarm_stream.result
        accounting.finished(routed, route=taxonomy.SWARM_ROUTE, mode="swarm", status=status,
                            usage=result.usage if result else Usage(), cost=result.cost_usd if result else 0.0,
                            upstream_s=result.log.upstream_s if result else 0.0,
                            fallbacks=result.log.failed if result else 0)
    if status == "ok" and result is not None:
        out.usage = result.usage
        out.router = routed.router_object(route=taxonomy.SWARM_ROUTE, mode="swarm", fallbacks=result.log.failed,
                                          cost_usd=result.cost_usd, swarm=result.swarm)
    yield sse.Last(renderer.end(out))
