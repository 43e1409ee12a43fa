"""``TaskDeadline``: ``asyncio.timeout`` for one block of a task, as a plain ``with`` on a given loop.

``async with asyncio.timeout(s)`` costs ~7 µs per stream on the first-token wait: a ``Timeout``
object, two coroutines (``__aenter__``/``__aexit__``), ``current_task()`` and ``reschedule`` each
asking for the running loop (CPython 3.11 checks the pid on every ask: a ``getpid`` syscall). This
is the same state machine (Python 3.11's ``asyncio/timeouts.py``) without the coroutines, with the
loop and task handed in: one ``call_at`` handle, cancelled when the block ends.

Semantics kept: when the deadline passes the task is cancelled; the block's ``CancelledError`` is
turned into ``TimeoutError`` only if no one else cancelled the task meanwhile (``uncancel()`` back
to the count seen on entry), so an outside cancellation still propagates as ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class TaskDeadline:
    __slots__ = ("_cancelling", "_delay_s", "_expired", "_handle", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[object], delay_s: float) -> None:
        self._loop = loop
        self._task = task
        self._delay_s = delay_s
        self._handle: asyncio.Handle | None = None
        self._expired = False
        self._cancelling = 0

    def __enter__(self) -> TaskDeadline:
        loop = self._loop
        self._cancelling = self._task.cancelling()
        when = loop.time() + self._delay_s
        # asyncio.timeout's reschedule: a deadline already past fires on the next turn, not at once.
        self._handle = loop.call_soon(self._on_timeout) if self._delay_s <= 0 else loop.call_at(when, self._on_timeout)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired:
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc  # our cancellation, and nobody else's: a timeout

    def _on_timeout(self) -> None:
        self._handle = None
        self._expired = True
        self._task.cancel()
