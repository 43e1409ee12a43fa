"""The lean path: relay OpenAI-format requests to OpenAI-compatible upstreams (vLLM, SGLang, NIM,
Moonshot, OpenAI) over one pool of keep-alive HTTP/1.1 connections (``http1.Pool``), with orjson.
No translation. The native Anthropic client (``anthropic.py``) shares the pool.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import Any

import orjson

from router.dispatch.http1 import HeaderLines, Http1Error, Pool, header_lines
from router.dispatch.upstream import (
    UpstreamCall,
    UpstreamError,
    answer_problem,
    complete_choice,
    error_message_from_body,
    normalize_reasoning,
    status_error,
    transport_error,
)
from router.sse import DataLines, LineTooLong


class OpenAIRelay:
    """Calls ``{api_base}/chat/completions``; one instance (one connection pool) per process."""

    def __init__(self, *, max_connections: int = 1024) -> None:
        self._pool = Pool(max_connections=max_connections)
        # (api_base, api key) -> the URL and the encoded header lines: the same for every call to
        # a backend, so built (and checked) once, not per request. In memory only, as the keys are.
        self._targets: dict[tuple[str, str | None], tuple[str, HeaderLines]] = {}

    def pool(self) -> Pool:
        """The connection pool, shared with the native Anthropic client (dispatch/anthropic.py)."""
        return self._pool

    @staticmethod
    def _url_and_headers(call: UpstreamCall) -> tuple[str, dict[str, str]]:
        headers = {"content-type": "application/json"}
        if call.api_key:
            headers["authorization"] = f"Bearer {call.api_key}"
        # OpenAI's API reference: POST {base}/chat/completions with a JSON body and a bearer key;
        # vLLM, SGLang, NIM and Moonshot serve the same route.
        return call.backend.api_base.rstrip("/") + "/chat/completions", headers

    def _target(self, call: UpstreamCall) -> tuple[str, HeaderLines]:
        key = (call.backend.api_base, call.api_key)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= 1024:  # keys rotated again and again: start over, never grow
                self._targets.clear()
            url, headers = self._url_and_headers(call)
            target = self._targets[key] = (url, header_lines(headers))
        return target

    async def complete(self, call: UpstreamCall) -> dict[str, Any]:
        resp = None
        try:
            url, headers = self._target(call)  # a header that cannot be sent: Http1Error, as from the pool
            resp = await self._pool.request("POST", url, headers, orjson.dumps(call.body),
                                            connect_s=call.backend.connect_timeout_s,
                                            total_s=call.attempt_timeout_s)
            raw = await resp.read()
            if resp.status != 200:
                raise status_error(resp.status, raw, resp.headers)
        except (TimeoutError, Http1Error) as exc:
            raise transport_error(exc, call.backend_name) from None
        finally:
            if resp is not None:
                resp.close()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("protocol", f"{call.backend_name} sent a body that is not JSON") from None
        if (problem := answer_problem(data, "message")) is not None:
            raise UpstreamError("protocol", f"{call.backend_name} sent a malformed answer: {problem}")
        answer: dict[str, Any] = data
        for choice in answer["choices"]:
            normalize_reasoning(choice["message"])
            complete_choice(choice)
        return answer

    def stream(self, call: UpstreamCall) -> RelayStream:
        """The upstream's chunks, parsed. Errors before the first chunk keep their kind; later ones
        are ``mid_stream``. ``aclose()`` closes the upstream connection (a cancel)."""
        lines = DataLines()
        return RelayStream(self._chunks(call, lines), lines)

    async def _chunks(self, call: UpstreamCall, lines: DataLines) -> AsyncGenerator[dict[str, Any], None]:
        started = False
        resp = None
        try:
            url, headers = self._target(call)
            # sock_read semantics: read_s bounds every wait for bytes, not the whole stream.
            resp = await self._pool.request("POST", url, headers, orjson.dumps(call.body),
                                            connect_s=call.backend.connect_timeout_s, read_s=call.backend.timeout_s)
            if resp.status != 200:
                raise status_error(resp.status, await resp.read(), resp.headers)
            resp.stream_into(lines)  # the connection splits the bytes into payloads as they arrive
            while (payload := await lines.next()) is not None:
                if payload == b"[DONE]":
                    resp.release_at_end()  # pooled once the HTTP message ends too
                    return
                try:
                    chunk = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise UpstreamError("mid_stream" if started else "protocol",
                                        f"{call.backend_name} sent a malformed event") from None
                if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                    raise UpstreamError("mid_stream" if started else "http_5xx",
                                        error_message_from_body(payload))
                if (problem := answer_problem(chunk, "delta")) is not None:
                    raise UpstreamError("mid_stream" if started else "protocol",
                                        f"{call.backend_name} sent a malformed chunk: {problem}")
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta")
                    if isinstance(delta, dict):
                        normalize_reasoning(delta)
                started = True
                yield chunk
            if started:
                raise UpstreamError("mid_stream", f"{call.backend_name} ended the stream without [DONE]")
            raise UpstreamError("protocol", f"{call.backend_name} sent an empty stream")
        except LineTooLong:
            raise UpstreamError("mid_stream" if started else "protocol",
                                f"{call.backend_name} sent an over-long event") from None
        except (TimeoutError, Http1Error) as exc:
            raise transport_error(exc, call.backend_name, stream=True, started=started) from None
        finally:
            if resp is not None:
                resp.close()  # a stream left half-read (error, client gone) closes its connection

    async def aclose(self) -> None:
        await self._pool.aclose()


class RelayStream:
    """The relay's chunks, plus ``ready()``: whether the next one is already in memory, so the
    gateway may wait for it and send several frames in one write without delaying any."""

    __slots__ = ("_chunks", "_lines")

    def __init__(self, chunks: AsyncGenerator[dict[str, Any], None], lines: DataLines) -> None:
        self._chunks = chunks
        self._lines = lines

    def __aiter__(self) -> RelayStream:
        return self

    def __anext__(self) -> Awaitable[dict[str, Any]]:
        # The generator's own awaitable, not a coroutine around it: one frame less per chunk.
        return self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()

    def ready(self) -> bool:
        return self._lines.ready()


def ready_now(stream: object) -> bool:
    """Whether ``stream``'s next chunk is already in memory; False for a stream that cannot tell
    (litellm's, a swarm's): its frames are then sent one by one, as they come."""
    ready = getattr(stream, "ready", None)
    return ready is not None and bool(ready())
