"""``POST /v1/chat/completions``: OpenAI's Chat Completions, the internal shape itself.

Parsing is the JSON decode (the pipeline validates the body); rendering adds the ``router`` object
to the answer. In a stream it rides, as an extra field, on the chunk that carries ``finish_reason``
— so ``for chunk in stream: chunk.choices[0]`` never meets an empty chunk — and a ``choices: []``
chunk with ``usage`` (and the ``router`` object again) is sent only when the client asked for it
with ``stream_options.include_usage``, as OpenAI does. Every chunk has the same id, model, created.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from router import offload, sse
from router.doors.base import Incoming, JsonReply, Reply, StreamReply
from router.errors import RouterError
from router.exchange import CHAT_API, Answer, AnswerStream
from router.protocol import parse_json_body
from router.services import Services


class ChatCompletionsDoor:
    api = CHAT_API

    def error_body(self, exc: RouterError) -> bytes:
        return exc.body_bytes()  # the error tree renders OpenAI's shape natively

    async def handle(self, incoming: Incoming, services: Services) -> Reply:
        size = len(incoming.body)  # a big body is parsed and prepared in turns (router.offload)
        body = await offload.sized(size, parse_json_body, incoming.body)
        result = await services.pipeline.serve(body, incoming.headers, arrived=incoming.arrived, api=self.api,
                                               tenant=incoming.tenant, size=size)
        if isinstance(result, AnswerStream):
            return StreamReply(stream_frames(result), result.headers)
        return JsonReply(render_answer(result), result.headers)


def render_answer(answer: Answer) -> bytes:
    response = answer.response
    response["router"] = answer.router
    return orjson.dumps(response)


async def stream_frames(stream: AnswerStream) -> AsyncGenerator[bytes, None]:
    finish: dict[str, Any] | None = None  # held back until the stream ends: the router object goes on it
    first: dict[str, Any] | None = None
    try:
        async for chunk in stream.chunks:
            if first is None:
                first = chunk
            if finish is not None:  # something after the finish chunk (not expected): keep the order
                yield sse.frame(finish)
                finish = None
            choices = chunk["choices"]
            if choices[0].get("finish_reason") is not None:
                finish = chunk
                continue
            yield sse.frame(chunk)
    finally:
        await stream.chunks.aclose()
    if stream.error is not None:  # the stream broke after it started: one error frame, then the end
        if finish is not None:
            yield sse.frame(finish)
        yield sse.frame(stream.error.body())
        yield sse.DONE
        return
    identity = _identity(first or {}, stream)
    if finish is None:  # the upstream ended without saying why; say it ended
        finish = {**identity, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    finish["router"] = stream.router
    yield sse.frame(finish)
    if stream.routed.include_usage:
        yield sse.frame({**identity, "choices": [], "usage": stream.usage.as_openai(), "router": stream.router})
    yield sse.DONE


def _identity(first: dict[str, Any], stream: AnswerStream) -> dict[str, Any]:
    routed = stream.routed
    return {"id": first.get("id") or f"chatcmpl-{routed.request_id}", "object": "chat.completion.chunk",
            "created": first.get("created") or int(time.time()), "model": first.get("model") or routed.chosen.route}
