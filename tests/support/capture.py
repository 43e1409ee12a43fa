"""A recording upstream on loopback: it keeps every request exactly as the gateway sent it and
answers with a minimal valid reply (OpenAI Chat Completions on ``/v1/chat/completions``, Anthropic
Messages on ``/v1/messages``; JSON or SSE), so tests can assert the exact outgoing body."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future
from typing import Any

from aiohttp import web


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


class CaptureUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Scripted Anthropic replies (None: the minimal one): a Message, and a stream's (event, data) list.
        self.anthropic_message: dict[str, Any] | None = None
        self.anthropic_events: list[tuple[str, dict[str, Any]]] | None = None

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def base_url(self, *, v1: bool = True) -> str:
        return f"http://127.0.0.1:{self.port}" + ("/v1" if v1 else "")

    def backend_env(self) -> dict[str, str]:
        """Every packaged backend (Kimi, Moonshot, OpenAI, Anthropic) pointed at this server."""
        return {"KIMI_API_BASE": self.base_url(), "OPENAI_API_BASE": self.base_url(), "OPENAI_API_KEY": "sk-o",
                "ANTHROPIC_API_BASE": self.base_url(v1=False), "ANTHROPIC_API_KEY": "sk-a",
                "MOONSHOT_API_BASE": self.base_url(), "MOONSHOT_API_KEY": "sk-m"}

    # -- handlers ---------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        return dict(body)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        head = {"id": "chatcmpl-capture", "created": 1_700_000_000, "model": body.get("model", "")}
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        if not body.get("stream"):
            return web.json_response({**head, "object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None},
                "logprobs": None, "finish_reason": "stop"}], "usage": usage})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunk = {**head, "object": "chat.completion.chunk"}
        for delta, finish in (({"role": "assistant", "content": ""}, None), ({"content": "ok"}, None), ({}, "stop")):
            await response.write(_sse({**chunk, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                             "finish_reason": finish}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_sse({**chunk, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        message = {"id": "msg_capture", "type": "message", "role": "assistant", "model": body.get("model", ""),
                   "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 5, "output_tokens": 2}}
        if not body.get("stream"):
            return web.json_response(self.anthropic_message or message)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        events = self.anthropic_events or [
            ("message_start", {"type": "message_start", "message": {
                **message, "content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "ok"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 2}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        for name, data in events:
            await response.write(_sse(data, name))
        return response

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> CaptureUpstream:
        ready: Future[None] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._openai)
            app.router.add_post("/v1/messages", self._anthropic)

            async def setup() -> None:
                self._runner = web.AppRunner(app, access_log=None)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                await site.start()
                self.port = int(self._runner.addresses[0][1])

            loop.run_until_complete(setup())
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        threading.Thread(target=run, name="capture-upstream", daemon=True).start()
        ready.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
