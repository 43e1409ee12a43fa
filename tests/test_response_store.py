"""The response store: the in-process LRU under a hand-driven clock, and the Redis store on a real
``redis-server`` (loopback, a free port), both through the same interface."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from router.doors import openai_responses
from router.doors.response_store import (
    MemoryResponseStore,
    RedisResponseStore,
    StoredResponse,
    build_response_store,
    remember,
)
from router.errors import Unavailable
from tests.support.redis_server import start_redis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stored(n: int, size: int = 10) -> StoredResponse:
    return StoredResponse(response={"id": f"resp_{n}", "object": "response", "output": []},
                          conversation=[{"type": "message", "role": "user", "content": "x" * size}])


def response(rid: str, text: str) -> dict[str, Any]:
    return {"id": rid, "object": "response", "output": [
        {"type": "message", "role": "assistant", "id": "msg_" + rid, "status": "completed",
         "content": [{"type": "output_text", "text": text, "annotations": []}]}]}


# --- in-process ------------------------------------------------------------------------------


async def test_memory_put_get_delete_and_copies() -> None:
    store = MemoryResponseStore()
    assert await store.put("resp_1", stored(1))
    got = await store.get("resp_1")
    assert got == stored(1)
    assert got is not None
    got.conversation.clear()  # a caller's mutation does not reach the store
    assert await store.get("resp_1") == stored(1)
    assert await store.delete("resp_1") and not await store.delete("resp_1")
    assert await store.get("resp_1") is None and store.bytes == 0


async def test_memory_ttl_with_a_hand_driven_clock() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl_s=60, clock=clock)
    await store.put("resp_1", stored(1))
    clock.now += 59.9
    assert await store.get("resp_1") is not None
    clock.now += 0.1
    assert await store.get("resp_1") is None
    assert len(store) == 0 and store.bytes == 0
    await store.put("resp_2", stored(2))
    clock.now += 61
    assert not await store.delete("resp_2")  # expired: nothing to delete


async def test_memory_lru_bound_in_entries() -> None:
    store = MemoryResponseStore(max_entries=3)
    for n in range(3):
        await store.put(f"resp_{n}", stored(n))
    await store.get("resp_0")  # used: resp_1 is now the least recently used
    await store.put("resp_3", stored(3))
    assert len(store) == 3
    assert await store.get("resp_1") is None
    assert all([await store.get(f"resp_{n}") for n in (0, 2, 3)])


async def test_memory_bound_in_bytes() -> None:
    one = len(stored(0, size=1000).dumps())
    store = MemoryResponseStore(max_bytes=one * 2 + 10)
    for n in range(5):
        await store.put(f"resp_{n}", stored(n, size=1000))
    assert len(store) == 2 and store.bytes <= store.max_bytes
    assert await store.get("resp_4") is not None and await store.get("resp_2") is None
    assert not await store.put("huge", stored(9, size=one * 3))  # larger than the whole store
    assert len(store) == 2


async def test_memory_replacing_an_entry_keeps_the_byte_count() -> None:
    store = MemoryResponseStore()
    await store.put("resp_1", stored(1, size=100))
    await store.put("resp_1", stored(1, size=10))
    assert store.bytes == len(stored(1, size=10).dumps())


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        MemoryResponseStore(max_entries=0)


async def test_remember_respects_store_false_and_chains_conversations() -> None:
    store = MemoryResponseStore()
    first_request = {"model": "auto", "input": "Hi", "instructions": "Be terse."}
    assert await remember(store, request=first_request, response=response("resp_a", "Hello."), previous=None)
    second_request = {"model": "auto", "input": "And?", "previous_response_id": "resp_a"}
    previous = await store.get("resp_a")
    assert previous is not None
    assert await remember(store, request=second_request, response=response("resp_b", "More."),
                          previous=previous.conversation)
    chained = await store.get("resp_b")
    assert chained is not None
    chat = openai_responses.to_chat_request({"model": "auto", "input": "Last?"}, chained.conversation)
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [
        ("user", "Hi"), ("assistant", "Hello."), ("user", "And?"), ("assistant", "More."), ("user", "Last?")]
    assert not await remember(store, request={**second_request, "store": False},
                              response=response("resp_c", "x"), previous=None)
    assert await store.get("resp_c") is None


def test_build_selects_by_redis_url() -> None:
    assert isinstance(build_response_store(redis_url=None), MemoryResponseStore)
    assert isinstance(build_response_store(redis_url=""), MemoryResponseStore)
    store = build_response_store(redis_url="redis://127.0.0.1:1/0", ttl_s=5)
    assert isinstance(store, RedisResponseStore) and store.ttl_s == 5  # no connection until first use
    asyncio.run(store.close())


# --- Redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with start_redis() as url:
        yield url


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisResponseStore]:
    store = RedisResponseStore.from_url(redis_url, ttl_s=30)
    yield store
    await store.client.flushdb()
    await store.close()


async def test_redis_put_get_delete(redis_store: RedisResponseStore) -> None:
    assert await redis_store.put("resp_1", stored(1))
    assert await redis_store.get("resp_1") == stored(1)
    assert await redis_store.delete("resp_1") and not await redis_store.delete("resp_1")
    assert await redis_store.get("resp_1") is None


async def test_redis_entries_carry_the_ttl(redis_store: RedisResponseStore) -> None:
    await redis_store.put("resp_1", stored(1))
    pttl = await redis_store.client.pttl(redis_store.prefix + "resp_1")
    assert 0 < pttl <= 30_000


async def test_redis_entries_expire(redis_url: str) -> None:
    store = RedisResponseStore.from_url(redis_url, ttl_s=0.05)
    try:
        await store.put("resp_short", stored(1))
        for _ in range(100):  # Redis expires keys on access once their time has passed
            if await store.get("resp_short") is None:
                break
            await asyncio.sleep(0.05)
        assert await store.get("resp_short") is None
    finally:
        await store.close()


async def test_redis_entry_size_cap(redis_store: RedisResponseStore) -> None:
    redis_store.max_entry_bytes = 100
    assert not await redis_store.put("big", stored(1, size=500))
    assert await redis_store.get("big") is None


async def test_redis_store_is_shared_between_clients(redis_url: str) -> None:
    """Two replicas, two connections: one stores, the other continues the conversation."""
    a, b = RedisResponseStore.from_url(redis_url), RedisResponseStore.from_url(redis_url)
    try:
        await remember(a, request={"model": "auto", "input": "Hi"}, response=response("resp_x", "Hello."),
                       previous=None)
        got = await b.get("resp_x")
        assert got is not None and got.conversation[-1]["content"][0]["text"] == "Hello."
    finally:
        await a.close()
        await b.close()


async def test_redis_down_is_a_503_on_lookup_and_a_skipped_store() -> None:
    store = RedisResponseStore.from_url("redis://127.0.0.1:1")  # as the gateway builds it: no port listens
    started = time.perf_counter()
    try:
        assert not await store.put("resp_1", stored(1))
        with pytest.raises(Unavailable, match="unreachable"):
            await store.get("resp_1")
        with pytest.raises(Unavailable):
            await store.delete("resp_1")
        assert time.perf_counter() - started < 3  # told at once, not after client-side retries with backoff
    finally:
        await store.close()


@pytest.fixture(params=["memory", "redis"])
async def any_store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryResponseStore()
        return
    store = RedisResponseStore.from_url(redis_url)
    yield store
    await store.client.flushdb()
    await store.close()


async def test_another_owner_finds_nothing(any_store: Any) -> None:
    """A response is the tenant's that made it: anyone else gets the 404 of an unknown id."""
    store = any_store
    await remember(store, request={"model": "m", "input": "secret"}, response=response("resp_t", "x"),
                   previous=None, owner="team-a")
    assert await store.get("resp_t") is None and await store.get("resp_t", owner="team-b") is None
    assert not await store.delete("resp_t", owner="team-b")
    got = await store.get("resp_t", owner="team-a")
    assert got is not None and got.owner == "team-a"
    assert await store.delete("resp_t", owner="team-a")
    assert await store.get("resp_t", owner="team-a") is None
