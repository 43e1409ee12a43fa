"""Work on a big request body takes turns, so one client cannot stall the event loop for long.

Parsing, validating and classifying an 8 MB body takes ~50-70 ms of CPU; eight such requests at
once froze every other client (``/healthz`` 1 ms → 2 s). A worker thread does not help: orjson and
pydantic-core hold the GIL for a whole call, and threads contending for it starve the loop worse
(measured: the longest pause grew). So above ``OFFLOAD_BYTES`` each step (parse, then prepare)
waits for its turn — one big step at a time, with the loop running everything else in between.
The longest pause is then one step of one request, which the caps in ``router.protocol`` bound.
Small bodies (nearly all traffic) run inline, untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

OFFLOAD_BYTES = 1 << 20
_YIELDS = 3

_P = ParamSpec("_P")
_T = TypeVar("_T")

_turn: asyncio.Lock | None = None


def _lock() -> asyncio.Lock:
    global _turn
    if _turn is None:  # created lazily: a lock belongs to the loop that first awaits it
        _turn = asyncio.Lock()
    return _turn


async def sized(size: int, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``fn(*args, **kwargs)``: at once for a small request; for a big one, after its turn."""
    if size < OFFLOAD_BYTES:
        return fn(*args, **kwargs)
    async with _lock():
        # Let whatever else is ready run first. A timer or a socket read reaches its task in two
        # hops (the future, then the task's step), so one yield is not enough to let it through.
        for _ in range(_YIELDS):
            await asyncio.sleep(0)
        return fn(*args, **kwargs)
