"""``/v1/responses``: OpenAI's Responses API on the one pipeline, with stored responses.

``POST /v1/responses`` turns the input items (plus the stored conversation of
``previous_response_id``) into the internal chat body (``openai_responses``), lets
``reasoning.effort`` pick the mode under ``model: auto`` unless the client named one, and renders
a ``Response`` or the Responses stream events (``responses_rendering``) with the ``router`` object
on the response. The finished response is stored (unless ``store: false``) before its last event
or body is sent, so a ``previous_response_id`` that follows can never miss it.
``GET``/``DELETE /v1/responses/{id}`` read and delete stored responses; ``POST …/cancel`` is only
meaningful for background responses, which are refused, so it says so. OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from router import errors, taxonomy
from router.doors import item_references, openai_responses, responses_rendering
from router.doors.base import Incoming, JsonReply, Reply, StreamReply, prefer_mode
from router.doors.response_store import ResponseStore, build_response_store, remember
from router.exchange import AnswerStream, Routed
from router.protocol import parse_json_body
from router.services import Services
from router.settings import Settings

RESPONSES_API = taxonomy.APIS[2]
RESPONSES_PATH = "/v1/responses"
RESPONSE_PREFIX = "/v1/responses/"


class ResponsesDoor:
    api = RESPONSES_API

    def __init__(self) -> None:
        self._store: ResponseStore | None = None

    def store(self, settings: Settings) -> ResponseStore:
        """The process's response store, built on first use from the settings (Redis or in-process)."""
        if self._store is None:
            self._store = build_response_store(redis_url=settings.redis_url, redis_password=settings.redis_password,
                                               ttl_s=settings.responses_ttl_s, redis_timeout_s=settings.redis_timeout_s,
                                               max_entries=settings.responses_store_max_entries,
                                               max_bytes=settings.responses_store_max_bytes)
        return self._store

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

    def error_body(self, exc: errors.RouterError) -> bytes:
        return exc.body_bytes()  # the Responses API answers errors in OpenAI's usual shape

    def stream_error_frames(self, exc: errors.RouterError) -> bytes:
        """A stream cut short by the gateway (the shutdown drain): the Responses ``error`` event,
        numbered after the stream's last event (the drain runs in the request's task)."""
        return responses_rendering.drain_error_event(exc.message, code=exc.instance_code, param=exc.param)

    async def handle(self, incoming: Incoming, services: Services) -> Reply:
        store = self.store(services.settings)
        if incoming.path == RESPONSES_PATH:
            if incoming.method != "POST":
                raise errors.MethodNotAllowed(f"{incoming.method} {incoming.path}: Method Not Allowed",
                                              headers={"allow": "POST"})
            return await self._create(incoming, services, store)
        response_id, _, action = incoming.path[len(RESPONSE_PREFIX):].partition("/")
        if not response_id or (incoming.method, action) not in (("GET", ""), ("DELETE", ""), ("POST", "cancel")):
            raise errors.MethodNotAllowed(f"{incoming.method} {incoming.path}: Method Not Allowed",
                                          headers={"allow": "POST" if action else "DELETE, GET"})
        stored = await store.get(response_id, owner=incoming.tenant)  # another tenant's: as if unknown
        if stored is None:
            raise openai_responses.ResponseNotFound(f"Response with id '{response_id}' not found.",
                                                    param="response_id")
        if incoming.method == "GET":
            return JsonReply(orjson.dumps(stored.response))
        if incoming.method == "DELETE":
            await store.delete(response_id, owner=incoming.tenant)
            return JsonReply(orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True}))
        raise errors.InvalidRequest("Only responses created with background=true can be cancelled; this "
                                    "gateway answers every response in the foreground.", param="response_id")

    async def _create(self, incoming: Incoming, services: Services, store: ResponseStore) -> Reply:
        body = parse_json_body(incoming.body)
        if isinstance(body, dict) and item_references.has_references(body.get("input")):
            # the AI SDK's store: true history: earlier items by id (resolved once, so stored conversations hold items)
            body = {**body, "input": await item_references.resolve(body["input"], store, incoming.tenant)}
        previous: list[dict[str, Any]] | None = None
        previous_id = body.get("previous_response_id")
        if previous_id is not None:
            stored = await store.get(previous_id, owner=incoming.tenant) if isinstance(previous_id, str) else None
            if stored is None:
                raise openai_responses.ResponseNotFound(f"Previous response with id '{previous_id}' not found.",
                                                        param="previous_response_id")
            previous = stored.conversation
        chat = openai_responses.to_chat_request(body, previous)
        prefer_mode(chat, openai_responses.mode_hint(body), incoming.headers)
        result = await services.pipeline.serve(chat, incoming.headers, arrived=incoming.arrived, api=self.api,
                                               tenant=incoming.tenant)
        if isinstance(result, AnswerStream):
            renderer = ResponsesStreamAdapter(result.routed, body)
            frames = result.frames(renderer)
            if openai_responses.should_store(body):
                frames = _stored_at_the_end(frames, renderer, store, body, previous, incoming.tenant)
            return StreamReply(frames, result.headers)
        answer = result.response
        response = responses_rendering.from_chat_response(
            answer, request=body, model=str(answer.get("model") or result.routed.chosen.route), router=result.router)
        await remember(store, request=body, response=response, previous=previous, owner=incoming.tenant)
        return JsonReply(orjson.dumps(response), result.headers)


class ResponsesStreamAdapter:
    """The pipeline's chunks into ``responses_rendering.ResponsesStreamRenderer``, which writes the events."""

    __slots__ = ("_request", "_routed", "renderer")

    def __init__(self, routed: Routed, request: dict[str, Any]) -> None:
        self._routed = routed
        self._request = request
        self.renderer: responses_rendering.ResponsesStreamRenderer | None = None

    def _start(self, first: dict[str, Any]) -> responses_rendering.ResponsesStreamRenderer:
        self.renderer = responses_rendering.ResponsesStreamRenderer(
            request=self._request, model=str(first.get("model") or self._routed.chosen.route))
        return self.renderer

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return (self.renderer or self._start(chunk)).feed(chunk)

    def end(self, stream: AnswerStream) -> bytes:
        renderer = self.renderer or self._start({})
        if stream.error is not None:
            code = "rate_limit_exceeded" if stream.error.status == 429 else "server_error"
            return renderer.fail(stream.error.message, code=code)
        return renderer.finish(usage=stream.usage.as_openai(), router=stream.router)


async def _stored_at_the_end(frames: AsyncGenerator[bytes, None], adapter: ResponsesStreamAdapter,
                             store: ResponseStore, request: dict[str, Any], previous: list[dict[str, Any]] | None,
                             owner: str | None) -> AsyncGenerator[bytes, None]:
    """The frames, with the finished response stored before its last event goes out."""
    try:
        async for frame in frames:
            renderer = adapter.renderer
            if renderer is not None and renderer.response is not None:  # the closing frame
                await remember(store, request=request, response=renderer.response, previous=previous, owner=owner)
            yield frame
    finally:
        await frames.aclose()
