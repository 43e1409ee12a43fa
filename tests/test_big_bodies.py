"""One client's huge request must not stall everyone else's (the event loop)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from router import offload
from router.errors import RequestTooLarge
from router.protocol import parse_json_body, validate_chat_request
from tests.conftest import Gateway

# Within the caps (4,096 parts), ~8 MB: the most one request may ask of the parser and validator.
BIG = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": [
    {"type": "text", "text": "word " * 390}] * 4000}]})


def _work(raw: bytes) -> None:
    validate_chat_request(parse_json_body(raw))


async def _beats_while(work: Any) -> int:
    """How many times a 1 ms heartbeat got to run while ``work`` ran (other clients' turns)."""
    beats = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal beats
        while not done.is_set():
            await asyncio.sleep(0.001)
            beats += 1

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)
    before = beats
    await work
    during = beats - before
    done.set()
    await beat
    return during


async def test_eight_big_bodies_at_once_leave_the_loop_to_other_clients_between_steps() -> None:
    """Counted, not timed (2 shared cores): inline, nobody else runs until all eight are done;
    taking turns, everyone else runs between any two big steps."""
    assert len(BIG) >= offload.OFFLOAD_BYTES

    async def inline() -> None:
        for _ in range(8):
            _work(BIG)

    async def taking_turns() -> None:
        await asyncio.gather(*(offload.sized(len(BIG), _work, BIG) for _ in range(8)))

    assert await _beats_while(inline()) <= 1
    assert await _beats_while(taking_turns()) >= 7


def test_a_quarter_million_parts_are_refused_before_they_are_parsed(gateway: Gateway) -> None:
    raw = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}] * 250_000}]})
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        r = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    # Refused by the key count on the raw bytes ("more than"), not after building 250k objects
    # (that check would name the exact count).
    assert "more than 4096 content parts" in r.json()["error"]["message"]
    with pytest.raises(RequestTooLarge, match="more than"):
        parse_json_body(raw)
