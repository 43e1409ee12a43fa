"""``POST /v1/chat/completions``: OpenAI's Chat Completions, the internal shape itself.

Parsing is the JSON decode (the pipeline validates the body); rendering adds the ``router`` object
to the answer. In a stream it rides, as an extra field, on the chunk that carries ``finish_reason``
— so ``for chunk in stream: chunk.choices[0]`` never meets an empty chunk — and a ``choices: []``
chunk with ``usage`` (and the ``router`` object again) is sent only when the client asked for it
with ``stream_options.include_usage``, as OpenAI does. Every chunk has the same id, model, created.
"""

from __future__ import annotations

import time
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
        body = (parse_json_body(incoming.body) if size < offload.OFFLOAD_BYTES  # at once, without a coroutine
                else await offload.sized(size, parse_json_body, incoming.body))
        result = await services.pipeline.serve(body, incoming.headers, arrived=incoming.arrived, api=self.api,
                                               tenant=incoming.tenant, size=size)
        if isinstance(result, AnswerStream):
            return StreamReply(result.frames(ChatStreamRenderer()), result.headers)
        return JsonReply(render_answer(result), result.headers)


def render_answer(answer: Answer) -> bytes:
    response = answer.response
    response["router"] = answer.router
    return orjson.dumps(response)


class ChatStreamRenderer:
    """OpenAI's SSE: chunks as they come, except the ``finish_reason`` chunk, held until the router object is known."""

    __slots__ = ("_finish", "_first")

    def __init__(self) -> None:
        self._first: dict[str, Any] | None = None
        self._finish: dict[str, Any] | None = None

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if self._first is None:
            self._first = chunk
        if self._finish is not None:  # something after the finish chunk (not expected): keep the order
            held, self._finish = sse.frame(self._finish), None
            return held + self.chunk(chunk)
        if chunk["choices"][0].get("finish_reason") is not None:
            self._finish = chunk
            return b""
        return sse.frame(chunk)

    def end(self, stream: AnswerStream) -> bytes:
        finish = self._finish
        if stream.error is not None:  # the stream broke after it started: one error frame, then the end
            return (sse.frame(finish) if finish is not None else b"") + sse.frame(stream.error.body()) + sse.DONE
        identity = _identity(self._first or {}, stream)
        if finish is None:  # the upstream ended without saying why; say it ended
            finish = {**identity, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        finish["router"] = stream.router
        out = sse.frame(finish)
        if stream.routed.include_usage:
            out += sse.frame({**identity, "choices": [], "usage": stream.usage.as_openai(), "router": stream.router})
        return out + sse.DONE


def _identity(first: dict[str, Any], stream: AnswerStream) -> dict[str, Any]:
    routed = stream.routed
    return {"id": first.get("id") or f"chatcmpl-{routed.request_id}", "object": "chat.completion.chunk",
            "created": first.get("created") or int(time.time()), "model": first.get("model") or routed.chosen.route}
