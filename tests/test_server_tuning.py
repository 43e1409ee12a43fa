"""The serving process's tuning (router/server.py): the collector; a response head sent with its body."""

from __future__ import annotations

import asyncio
import gc

from router.server import GC_YOUNG_THRESHOLD, HeadWithBody, tune_collector


def test_the_young_threshold_is_raised_and_the_older_ones_are_kept() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 7, 9)
        tune_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 7, 9)
    finally:
        gc.set_threshold(*before)


# --- HeadWithBody: a response's head leaves with its first body bytes ------------------------------
class Wire:
    """Stands in for the socket: records each write (one write = one syscall)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


def _turns(loop: asyncio.AbstractEventLoop, n: int = 1) -> None:
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))


def test_the_head_and_the_first_body_bytes_go_out_in_one_write() -> None:
    loop = asyncio.new_event_loop()
    try:
        wire = Wire()
        out = HeadWithBody(wire, loop)  # type: ignore[arg-type]
        out.write(b"HTTP/1.1 200 OK\r\n\r\n")
        out.write(b"data: 1\n\n")
        out.write(b"data: 2\n\n")
        _turns(loop)
        assert wire.writes == [b"HTTP/1.1 200 OK\r\n\r\ndata: 1\n\n", b"data: 2\n\n"]
    finally:
        loop.close()


def test_a_head_whose_body_is_not_ready_this_turn_is_not_held_longer() -> None:
    loop = asyncio.new_event_loop()
    try:
        wire = Wire()
        out = HeadWithBody(wire, loop)  # type: ignore[arg-type]
        out.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert wire.writes == []
        _turns(loop)
        assert wire.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
        out.write(b"body")
        assert wire.writes == [b"HTTP/1.1 200 OK\r\n\r\n", b"body"]
        assert out.get_extra_info("peername") == "extra:peername"
    finally:
        loop.close()


def test_closing_sends_a_held_head_first() -> None:
    loop = asyncio.new_event_loop()
    try:
        wire = Wire()
        out = HeadWithBody(wire, loop)  # type: ignore[arg-type]
        out.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        out.close()
        assert wire.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"] and wire.closed
        _turns(loop)
        assert len(wire.writes) == 1  # the scheduled flush finds nothing left
    finally:
        loop.close()
