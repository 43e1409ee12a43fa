"""Server-sent events: the framing every front door writes (``data:`` frames, named events, ``[DONE]``)
and the reading of an upstream's stream (``DataLines``)."""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

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


class ByteSource(Protocol):
    """What ``DataLines`` reads from: an aiohttp ``StreamReader`` (``resp.content``)."""

    def read_nowait(self, n: int = -1) -> bytes: ...

    async def readany(self) -> bytes: ...


class LineTooLong(ValueError):
    """An SSE line grew past ``DataLines.max_line`` bytes without ending."""


class DataLines:
    """The ``data:`` payloads of an SSE byte stream, read in bulk.

    One read takes everything the socket has buffered, so a burst of frames costs one await, not
    a ``readline()`` per line (two per frame). ``ready()`` says whether the next payload is already
    in memory — the caller may then wait for it and send both frames in one write — and never
    waits itself. Only ``data:`` lines matter to OpenAI-compatible streams (one JSON per line);
    comments, ``event:`` lines and blank separators are dropped as the bytes are split.
    """

    __slots__ = ("_partial", "_payloads", "_source", "max_line")

    def __init__(self, max_line: int = 8 << 20) -> None:
        self._source: ByteSource | None = None
        self._payloads: deque[bytes] = deque()
        self._partial = b""
        self.max_line = max_line  # a line this long with no end in sight is a broken upstream

    def attach(self, source: ByteSource) -> None:
        self._source = source

    def _take(self, data: bytes) -> None:
        lines = (self._partial + data if self._partial else data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > self.max_line:
            raise LineTooLong(f"an SSE line longer than {self.max_line} bytes")
        append = self._payloads.append
        for line in lines:
            if line.startswith(b"data:"):
                append(line[5:].strip())  # strip(): the optional space, and \r of a \r\n ending

    def ready(self) -> bool:
        """True when the next payload can be had without waiting for the network."""
        if self._payloads:
            return True
        if self._source is None:
            return False
        try:
            data = self._source.read_nowait()
            if data:
                self._take(data)
        except Exception:  # a broken stream: say "not ready", the next read raises it properly
            return False
        return bool(self._payloads)

    async def next(self) -> bytes | None:
        """The next ``data:`` payload; ``None`` at the end of the bytes."""
        while not self._payloads:
            assert self._source is not None, "attach() a source first"
            data = await self._source.readany()
            if not data:  # the end: a last line without its newline still counts
                last, self._partial = self._partial, b""
                return last[5:].strip() if last.startswith(b"data:") else None
            self._take(data)
        return self._payloads.popleft()
