"""``TaskDeadline`` behaves as ``asyncio.timeout`` does, case by case (each case run under both)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from router.dispatch.deadline import TaskDeadline


def _run(kind: str, delay: float, body: Callable[[], Any], outside_cancel_after: float | None = None) -> str:
    """Run ``body`` under a deadline of ``delay`` s in a fresh task; what came out of it."""

    async def guarded() -> str:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        if kind == "asyncio":
            async with asyncio.timeout(delay):
                return str(await body())
        with TaskDeadline(loop, task, delay):
            return str(await body())

    async def main() -> str:
        task = asyncio.get_running_loop().create_task(guarded())
        if outside_cancel_after is not None:
            await asyncio.sleep(outside_cancel_after)
            task.cancel()
        try:
            result = await task
        except asyncio.CancelledError:
            return "cancelled"
        except TimeoutError:
            return f"timeout cancelling={task.cancelling()}"
        return f"ok {result} cancelling={task.cancelling()}"

    return asyncio.run(main())


async def _forever() -> str:
    await asyncio.get_running_loop().create_future()
    return "never"


async def _quick() -> str:
    await asyncio.sleep(0)
    return "done"


async def _raises() -> str:
    await asyncio.sleep(0)
    raise ValueError("boom")


@pytest.mark.parametrize("kind", ["asyncio", "deadline"])
def test_a_block_that_ends_in_time_returns_its_result(kind: str) -> None:
    assert _run(kind, 5.0, _quick) == "ok done cancelling=0"


@pytest.mark.parametrize("kind", ["asyncio", "deadline"])
@pytest.mark.parametrize("delay", [0.0, -1.0, 0.01])
def test_a_block_past_its_deadline_raises_timeout_error(kind: str, delay: float) -> None:
    assert _run(kind, delay, _forever) == "timeout cancelling=0"


@pytest.mark.parametrize("kind", ["asyncio", "deadline"])
def test_a_cancellation_from_outside_stays_a_cancellation(kind: str) -> None:
    assert _run(kind, 5.0, _forever, outside_cancel_after=0.01) == "cancelled"


@pytest.mark.parametrize("kind", ["asyncio", "deadline"])
def test_an_outside_cancellation_racing_the_deadline_is_not_swallowed(kind: str) -> None:
    async def both() -> str:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, task.cancel)  # fires after the deadline's handle, same turn or the next
        await loop.create_future()
        return "never"

    assert _run(kind, 0.01, both) == "cancelled"


@pytest.mark.parametrize("kind", ["asyncio", "deadline"])
def test_other_errors_pass_through(kind: str) -> None:
    with pytest.raises(ValueError, match="boom"):
        _run(kind, 5.0, _raises)


@pytest.mark.parametrize("kind", ["asyncio", "deadline"])
def test_the_timer_is_cancelled_when_the_block_ends(kind: str) -> None:
    async def quick_then_linger() -> str:
        return "done"

    async def main() -> str:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        if kind == "asyncio":
            async with asyncio.timeout(0.01):
                await quick_then_linger()
        else:
            with TaskDeadline(loop, task, 0.01):
                await quick_then_linger()
        await asyncio.sleep(0.05)  # past the deadline: a timer left armed would cancel this sleep
        return "lived"

    assert asyncio.run(main()) == "lived"
