"""An OpenAI-compatible upstream that answers with whatever it is told to: garbage on demand.

The fuzz and soak runs use it to play a broken upstream (a non-object chunk, ``choices: [7]``, a
malformed ``usage``, a stream cut short): ``set_reply`` installs the raw answer every request gets.

    with ReplayUpstream() as bad:
        bad.set_reply(Reply.sse([b'data: [1,2]\\n\\n']))
        policy["backends"]["kimi"]["api_base"] = bad.base_url
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    content_type: str = "application/json"
    pieces: tuple[bytes, ...] = ()  # written one after another (SSE: each flushed on its own)

    @classmethod
    def json(cls, body: bytes, status: int = 200) -> Reply:
        return cls(status, "application/json", (body,))

    @classmethod
    def sse(cls, events: list[bytes]) -> Reply:
        return cls(200, "text/event-stream", tuple(events))


@dataclass
class _State:
    reply: Reply = field(default_factory=lambda: Reply.json(b"{}"))
    requests: int = 0


class ReplayUpstream:
    """One aiohttp server on 127.0.0.1 in its own thread; ``/v1/chat/completions`` replays ``reply``."""

    def __init__(self) -> None:
        self._state = _State()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replay-upstream", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> int:
        return self._state.requests

    def set_reply(self, reply: Reply) -> None:
        self._state.reply = reply

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self._state.requests += 1
        reply = self._state.reply
        response = web.StreamResponse(status=reply.status, headers={"content-type": reply.content_type})
        await response.prepare(request)
        for piece in reply.pieces:
            await response.write(piece)
        await response.write_eof()
        return response

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    def start(self) -> ReplayUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> ReplayUpstream:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
