"""Stored Responses: ``GET``/``DELETE /v1/responses/{id}`` and the conversation behind ``previous_response_id``.

Two implementations of one async interface, chosen by ``build_response_store``:
- ``MemoryResponseStore`` (default): in-process LRU bounded in entries and bytes, entries expire
  after ``ttl_s``; the clock is injectable so tests drive time by hand.
- ``RedisResponseStore`` (``ROUTER_REDIS_URL`` set): one key per response with Redis' own expiry,
  so every replica sees every response.

Entries are kept as JSON bytes: their size is exact for the bound, and a caller that mutates what
``get`` returned cannot change what is stored. Each entry records its ``owner`` (the tenant, or
None when there is one); ``get`` and ``delete`` by anyone else find nothing — the same 404 as an
unknown id, so ids of other tenants' responses cannot even be confirmed.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from router.doors.openai_responses import conversation_items, should_store
from router.errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]  # the Response object, as returned to the client
    conversation: list[dict[str, Any]]  # input and output items so far, for previous_response_id
    owner: str | None = None  # the tenant that created it

    def dumps(self) -> bytes:
        return orjson.dumps({"response": self.response, "conversation": self.conversation, "owner": self.owner})

    @classmethod
    def loads(cls, raw: bytes) -> StoredResponse:
        data = orjson.loads(raw)
        return cls(response=data["response"], conversation=data["conversation"], owner=data.get("owner"))


class ResponseStore(Protocol):
    async def put(self, response_id: str, stored: StoredResponse) -> bool: ...

    async def get(self, response_id: str, *, owner: str | None = None) -> StoredResponse | None: ...

    async def delete(self, response_id: str, *, owner: str | None = None) -> bool: ...

    async def close(self) -> None: ...


async def remember(store: ResponseStore, *, request: dict[str, Any], response: dict[str, Any],
                   previous: list[dict[str, Any]] | None, owner: str | None = None) -> bool:
    """Store a finished response unless the request said ``store: false``; True if it was stored."""
    if not should_store(request):
        return False
    conversation = conversation_items(previous, request, response)
    return await store.put(response["id"], StoredResponse(response=response, conversation=conversation,
                                                          owner=owner))


class MemoryResponseStore:
    """LRU over ``max_entries`` and ``max_bytes``; an entry older than ``ttl_s`` is gone."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0 or max_entries < 1 or max_bytes < 1:
            raise ValueError("response store: ttl_s, max_entries and max_bytes must be positive")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # id → (expires at, JSON)
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def put(self, response_id: str, stored: StoredResponse) -> bool:
        raw = stored.dumps()
        if len(raw) > self.max_bytes:
            return False  # larger than the whole store: keeping it would evict everything else
        self._drop(response_id)
        self._entries[response_id] = (self._clock() + self.ttl_s, raw)
        self.bytes += len(raw)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))  # least recently used first
        return True

    async def get(self, response_id: str, *, owner: str | None = None) -> StoredResponse | None:
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(response_id)
            return None
        stored = StoredResponse.loads(entry[1])
        if stored.owner != owner:
            return None
        self._entries.move_to_end(response_id)
        return stored

    async def delete(self, response_id: str, *, owner: str | None = None) -> bool:
        if await self.get(response_id, owner=owner) is None:
            return False
        self._drop(response_id)
        return True

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def _drop(self, response_id: str) -> None:
        entry = self._entries.pop(response_id, None)
        if entry is not None:
            self.bytes -= len(entry[1])


class RedisResponseStore:
    """One Redis string per response (``<prefix><id>``), expiring after ``ttl_s`` (Redis ``EX``).

    Redis bounds its own memory (``maxmemory`` and an eviction policy); ``max_entry_bytes`` keeps
    one runaway conversation from taking it. Redis down: a lookup is a 503 (``Unavailable``), a
    store after the answer is logged and skipped (the client already has its answer).
    """

    def __init__(self, client: Any, *, ttl_s: float = DEFAULT_TTL_S, max_entry_bytes: int = 8 * 1024 * 1024,
                 prefix: str = "model-router:response:") -> None:
        from redis.exceptions import RedisError  # the package is needed only when Redis is configured

        self.client = client  # a redis.asyncio.Redis
        self._errors: type[Exception] = RedisError
        self.ttl_s = ttl_s
        self.max_entry_bytes = max_entry_bytes
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, password: str = "", timeout_s: float = 1.0,
                 **kwargs: Any) -> RedisResponseStore:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # The chart passes the password apart from the URL (ROUTER_REDIS_PASSWORD, from a Secret).
        # Fail fast when Redis is away: redis-py's default retries with backoff held each call ~4.5 s
        # on a refused connection. One immediate retry stays (get/set/del are idempotent) for a pooled
        # connection that died with a Redis restart.
        client = redis.asyncio.Redis.from_url(url, password=password or None, socket_timeout=timeout_s,
                                              socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        return cls(client, **kwargs)

    async def put(self, response_id: str, stored: StoredResponse) -> bool:
        raw = stored.dumps()
        if len(raw) > self.max_entry_bytes:
            return False
        try:
            await self.client.set(self.prefix + response_id, raw, px=max(1, int(self.ttl_s * 1000)))
        except self._errors as exc:
            log.warning("response store: could not store %s: %s", response_id, type(exc).__name__)
            return False
        return True

    async def get(self, response_id: str, *, owner: str | None = None) -> StoredResponse | None:
        try:
            raw = await self.client.get(self.prefix + response_id)
        except self._errors as exc:
            raise Unavailable(f"The response store is unreachable ({type(exc).__name__}); retry later.") from None
        stored = None if raw is None else StoredResponse.loads(raw)
        return stored if stored is not None and stored.owner == owner else None

    async def delete(self, response_id: str, *, owner: str | None = None) -> bool:
        if await self.get(response_id, owner=owner) is None:
            return False
        try:
            return bool(await self.client.delete(self.prefix + response_id))
        except self._errors as exc:
            raise Unavailable(f"The response store is unreachable ({type(exc).__name__}); retry later.") from None

    async def close(self) -> None:
        await self.client.aclose()


def build_response_store(*, redis_url: str | None, redis_password: str = "", ttl_s: float = DEFAULT_TTL_S,
                         redis_timeout_s: float = 1.0, max_entries: int = DEFAULT_MAX_ENTRIES,
                         max_bytes: int = DEFAULT_MAX_BYTES) -> MemoryResponseStore | RedisResponseStore:
    """Redis when ``redis_url`` (``ROUTER_REDIS_URL``) is set, else the in-process store."""
    if redis_url:
        return RedisResponseStore.from_url(redis_url, password=redis_password, timeout_s=redis_timeout_s, ttl_s=ttl_s)
    return MemoryResponseStore(ttl_s=ttl_s, max_entries=max_entries, max_bytes=max_bytes)
