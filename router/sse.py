"""Server-sent events: the framing every front door writes (``data:`` frames, named events, ``[DONE]``)
and the reading of an upstream's stream (``DataLines``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


class Last(bytes):
    """A stream's final bytes: the front door sends them as the end of the body (one write, not two).
    Nothing may follow them; a stream that never yields one is ended with an empty write."""


def frame(obj: Any) -> bytes:
    """``data: {json}\\n\\n`` — OpenAI's framing (the event type lives inside the JSON)."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def event(name: str, obj: Any) -> bytes:
    """``event: name\\ndata: {json}\\n\\n`` — Anthropic's and the Responses API's framing."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


class LineTooLong(ValueError):
    """An SSE line grew past ``DataLines.max_line`` bytes without ending."""


class DataLines:
    """The ``data:`` payloads of an SSE byte stream, split as the bytes arrive.

    The upstream connection pushes the body into it (``feed``, an ``http1.BodySink``) as the socket
    delivers it, de-chunked: the bytes are split where they land, with no intermediate buffer, and
    a burst of frames costs the consumer one await, not a ``readline()`` per line (two per frame).
    ``ready()`` says whether the next payload is already in memory — the caller may then wait for it
    and send both frames in one write — and never waits itself. Only ``data:`` lines matter to
    OpenAI-compatible streams (one JSON per line) and Anthropic's (the ``event:`` line repeats the
    type); comments, ``event:`` lines and blank separators are dropped as the bytes are split.
    Backpressure: past ``high_water`` bytes of payloads not yet taken, ``feed`` says "full" (the
    connection stops reading) and reading resumes once the consumer took half of them.
    """

    __slots__ = ("_buffered", "_end", "_error", "_full", "_partial", "_payloads", "_resume", "_waiter",
                 "high_water", "max_line")

    def __init__(self, max_line: int = 8 << 20, high_water: int = 256 << 10) -> None:
        self._payloads: deque[bytes] = deque()
        self._partial = b""
        self._buffered = 0
        self._full = False
        self._end = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._resume: Callable[[], None] | None = None
        self.max_line = max_line  # a line this long with no end in sight is a broken upstream
        self.high_water = high_water

    # --- the producer's side (the connection) --------------------------------------------------
    def bind(self, resume: Callable[[], None]) -> None:
        self._resume = resume

    def feed(self, data: bytes) -> bool:
        if self._error is not None or self._end:
            return False  # broken: stop reading; the consumer raises and closes the connection
        lines = (self._partial + data if self._partial else data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > self.max_line:
            self._partial = b""
            self.feed_error(LineTooLong(f"an SSE line longer than {self.max_line} bytes"))
            return False
        payloads = self._payloads
        before = len(payloads)
        for line in lines:
            if line.startswith(b"data:"):
                payload = line[5:].strip()  # strip(): the optional space, and \r of a \r\n ending
                payloads.append(payload)
                self._buffered += len(payload)
        if len(payloads) != before:
            self._wake()
        if self._buffered >= self.high_water:
            self._full = True
            return False
        return True

    def feed_eof(self) -> None:
        last, self._partial = self._partial, b""
        if last.startswith(b"data:"):  # a last line without its newline still counts
            self._payloads.append(last[5:].strip())
        self._end = True
        self._wake()

    def feed_error(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the consumer's side -------------------------------------------------------------------
    def ready(self) -> bool:
        """True when the next payload can be had without waiting for the network."""
        return bool(self._payloads)

    async def next(self) -> bytes | None:
        """The next ``data:`` payload; ``None`` at the end of the bytes. A failure of the stream
        (a timeout, a closed connection, an endless line) is raised after the payloads before it."""
        payloads = self._payloads
        while not payloads:
            if self._error is not None:
                raise self._error
            if self._end:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        payload = payloads.popleft()
        self._buffered -= len(payload)
        if self._full and self._buffered <= self.high_water // 2:
            self._full = False
            if self._resume is not None:
                self._resume()
        return payload
