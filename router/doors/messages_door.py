"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API on the one pipeline.

The request becomes the internal chat body (``anthropic_messages.to_chat_request``); ``thinking``
picks the mode when the client named none (``model: auto`` without ``X-Router-Mode`` or
``router.mode``); the answer is rendered as a ``Message`` and a stream as Anthropic's events
(``anthropic_rendering``), with the ``router`` object on the ``Message`` and on ``message_delta``.
Errors are Anthropic's ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from router import taxonomy
from router.doors import anthropic_messages, anthropic_rendering
from router.doors.base import Incoming, JsonReply, Reply, StreamReply, prefer_mode
from router.errors import RouterError
from router.exchange import Answer, AnswerStream, Routed
from router.protocol import parse_json_body
from router.services import Services

MESSAGES_API = taxonomy.APIS[1]
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class MessagesDoor:
    api = MESSAGES_API

    def error_body(self, exc: RouterError) -> bytes:
        return anthropic_messages.error_body(exc.status, exc.message)

    async def handle(self, incoming: Incoming, services: Services) -> Reply:
        body = parse_json_body(incoming.body)
        if incoming.path == COUNT_TOKENS_PATH:
            return JsonReply(orjson.dumps(anthropic_messages.count_tokens(body)))
        chat = anthropic_messages.to_chat_request(body)
        prefer_mode(chat, anthropic_messages.mode_hint(body), incoming.headers)
        stop_sequences = body.get("stop_sequences") or None
        result = await services.pipeline.serve(chat, incoming.headers, arrived=incoming.arrived, api=self.api,
                                               tenant=incoming.tenant)
        if isinstance(result, AnswerStream):
            headers = {**result.headers, "request-id": result.routed.request_id}
            return StreamReply(result.frames(MessagesStreamAdapter(result.routed, stop_sequences)), headers)
        headers = {**result.headers, "request-id": result.routed.request_id}
        return JsonReply(render_message(result, stop_sequences), headers)


def render_message(answer: Answer, stop_sequences: list[str] | None) -> bytes:
    response = answer.response
    message = anthropic_rendering.from_chat_response({**response, "router": answer.router},
                                                     model=str(response.get("model") or answer.routed.chosen.route),
                                                     stop_sequences=stop_sequences)
    return orjson.dumps(message)


class MessagesStreamAdapter:
    """The pipeline's chunks into ``anthropic_rendering.MessagesStreamRenderer``, which writes the events."""

    __slots__ = ("_renderer", "_routed", "_stop_sequences")

    def __init__(self, routed: Routed, stop_sequences: list[str] | None) -> None:
        self._routed = routed
        self._stop_sequences = stop_sequences
        self._renderer: anthropic_rendering.MessagesStreamRenderer | None = None

    def _start(self, first: dict[str, Any]) -> anthropic_rendering.MessagesStreamRenderer:
        self._renderer = anthropic_rendering.MessagesStreamRenderer(
            model=str(first.get("model") or self._routed.chosen.route),
            message_id=anthropic_rendering.message_id(first.get("id") or self._routed.request_id),
            input_tokens=self._routed.facts.input_tokens, stop_sequences=self._stop_sequences)
        return self._renderer

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return (self._renderer or self._start(chunk)).feed(chunk)

    def end(self, stream: AnswerStream) -> bytes:
        renderer = self._renderer or self._start({})
        if stream.error is not None:
            return renderer.error(stream.error.status, stream.error.message)
        # Cumulative usage and the router object ride on message_delta.
        renderer.feed({"choices": [], "usage": stream.usage.as_openai(), "router": stream.router})
        return renderer.finish()
