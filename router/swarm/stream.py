"""A swarm run as OpenAI ``chat.completion.chunk``s: progress while agents work, then the answer.

Progress lines are ``reasoning_content`` deltas (what OpenAI-compatible clients already show as
"thinking"); the answer follows as ``content`` deltas and a ``finish_reason`` chunk. The serving
pipeline reports how the stream ended; each front door renders the end in its own protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from router import errors
from router.observability.tracing import RequestTrace
from router.swarm.result import SwarmResult

# Starts a run that reports progress lines through the callable it is given.
RunFactory = Callable[[Callable[[str], None]], Coroutine[Any, Any, SwarmResult]]


class SwarmStream:
    """``chunks``: progress, then the answer; ``result`` once the run has succeeded.

    The run is a task owned by the iterator: closing or cancelling the iterator (the client went
    away) cancels the run, its task group and every upstream call in flight.
    """

    def __init__(self, run: RunFactory, *, request_id: str, model: str, trace: RequestTrace) -> None:
        self.result: SwarmResult | None = None
        self._run = run
        self._id = f"chatcmpl-{request_id}"
        self._model = model
        self._created = int(time.time())  # one id, model and created across the whole stream
        self._trace = trace
        self.chunks: AsyncGenerator[dict[str, Any], None] = self._chunks()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                   "finish_reason": finish}]}

    async def _chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        with self._trace.activate():  # the task copies this context: its spans nest under the request
            task = asyncio.create_task(self._run(lines.put_nowait), name=self._id)
        task.add_done_callback(lambda _: lines.put_nowait(None))
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while (line := await lines.get()) is not None:
                yield self._chunk({"reasoning_content": line})
            result = task.result()  # a RouterError surfaces here, for the serving layer to report
            self.result = result
            choice = result.response["choices"][0]
            for piece in pieces(choice["message"].get("content") or ""):
                yield self._chunk({"content": piece})
            calls = choice["message"].get("tool_calls")
            if calls:  # the aggregator called the client's tools: streamed as OpenAI does, with indices
                yield self._chunk({"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]})
            yield self._chunk({}, choice.get("finish_reason") or "stop")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, errors.RouterError):
                    await task


def pieces(text: str, size: int = 400) -> list[str]:
    """The answer in line-aligned pieces of about ``size`` characters."""
    out: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        current += line
        if len(current) >= size:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return out
