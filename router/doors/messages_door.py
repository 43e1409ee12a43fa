"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API on the one pipeline.

The request becomes the internal chat body (``anthropic_messages.to_chat_request``), which routing
reads; ``thinking`` picks the mode when the client named none (``model: auto`` without
``X-Router-Mode`` or ``router.mode``). The client's own body rides along (``Routed.native``): a
route to Claude gets it as it came and answers in Anthropic's shape, passed on as it came
(``anthropic_rendering.relayed_message`` / ``MessagesEventRelay``); any other route answers in the
chat shape, rendered as a ``Message`` and Anthropic's events (``anthropic_rendering``). The
``router`` object rides on the ``Message`` and on ``message_delta`` either way.
Errors are Anthropic's ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from router import sse, taxonomy
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

    def stream_error_frames(self, exc: RouterError) -> bytes:
        """A stream cut short by the gateway (the shutdown drain): Anthropic's ``error`` event."""
        return sse.event("error", anthropic_messages.error_object(exc.status, exc.message))

    async def handle(self, incoming: Incoming, services: Services) -> Reply:
        body = parse_json_body(incoming.body)
        if incoming.path == COUNT_TOKENS_PATH:
            return JsonReply(orjson.dumps(anthropic_messages.count_tokens(body)))
        chat = anthropic_messages.to_chat_request(body)
        prefer_mode(chat, anthropic_messages.mode_hint(body), incoming.headers)
        options = _Options(body.get("stop_sequences") or None, anthropic_messages.omit_thinking(body))
        native = anthropic_messages.claude_passthrough(body, incoming.headers, model=chat["model"])
        result = await services.pipeline.serve(chat, incoming.headers, arrived=incoming.arrived, api=self.api,
                                               tenant=incoming.tenant, native=native)
        headers = {**result.headers, "request-id": result.routed.request_id}  # what the SDK reports as _request_id
        if isinstance(result, AnswerStream):
            return StreamReply(result.frames(MessagesStreamAdapter(result.routed, options)), headers)
        return JsonReply(render_message(result, options), headers)


class _Options(NamedTuple):
    """What the rendering needs from the request."""

    stop_sequences: list[str] | None
    omit_thinking: bool  # thinking.display "omitted": the blocks keep their signature, lose the text


def render_message(answer: Answer, options: _Options) -> bytes:
    response = answer.response
    if "choices" not in response:  # Claude answered the client's own body (a Message): no conversion
        return orjson.dumps(anthropic_rendering.relayed_message(
            response, model=answer.routed.chosen.route, router=answer.router))
    message = anthropic_rendering.from_chat_response(
        response, model=str(response.get("model") or answer.routed.chosen.route),
        stop_sequences=options.stop_sequences, router=answer.router, omit_thinking=options.omit_thinking)
    return orjson.dumps(message)


# Chat chunks → Anthropic events, or Claude's own events passed on.
_Renderer = anthropic_rendering.MessagesStreamRenderer | anthropic_rendering.MessagesEventRelay


class MessagesStreamAdapter:
    """The pipeline's chunks into ``anthropic_rendering.MessagesStreamRenderer``, which writes the
    events — or, when Claude streams its own events (they have no ``choices``), ``MessagesEventRelay``."""

    __slots__ = ("_options", "_renderer", "_routed")

    def __init__(self, routed: Routed, options: _Options) -> None:
        self._routed = routed
        self._options = options
        self._renderer: _Renderer | None = None

    def _start(self, first: dict[str, Any]) -> _Renderer:
        if "choices" not in first:  # chat chunks always have choices; Claude's events never do
            self._renderer = anthropic_rendering.MessagesEventRelay(model=self._routed.chosen.route)
            return self._renderer
        return self._render_chat(first)

    def _render_chat(self, first: dict[str, Any]) -> anthropic_rendering.MessagesStreamRenderer:
        self._renderer = anthropic_rendering.MessagesStreamRenderer(
            model=str(first.get("model") or self._routed.chosen.route),
            message_id=anthropic_rendering.message_id(first.get("id") or self._routed.request_id),
            input_tokens=self._routed.facts.input_tokens, stop_sequences=self._options.stop_sequences,
            omit_thinking=self._options.omit_thinking)
        return self._renderer

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return (self._renderer or self._start(chunk)).feed(chunk)

    def end(self, stream: AnswerStream) -> bytes:
        renderer = self._renderer or self._render_chat({})  # nothing came: the gateway opens the message
        if stream.error is not None:
            return renderer.error(stream.error.status, stream.error.message)
        # Cumulative usage and the router object ride on message_delta.
        return renderer.finish(usage=stream.usage.as_openai(), router=stream.router)
