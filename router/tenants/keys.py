"""Client keys: made here, stored only as SHA-256 hashes, found by hash.

A key is 256 random bits (``mr-`` + 43 URL-safe characters), so a plain SHA-256 is enough: there
is nothing to brute-force, and a fast hash keeps look-ups off the hot path's budget. Look-up is by
the offered key's hash; the stored hash is then confirmed with ``hmac.compare_digest``. The
dictionary probe only ever sees hashes, and a timing difference in it could reveal something about
the hash of the caller's own guess, never about a stored key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Generic, TypeVar

KEY_PREFIX = "mr-"
T = TypeVar("T")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A handle for listing and revoking, random so it says nothing about the key or its hash."""
    return "key_" + secrets.token_hex(8)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    key = authorization[7:].strip()
    return key or None


class KeyIndex(Generic[T]):
    """Hash -> whatever a key stands for (a principal)."""

    __slots__ = ("_by_hash",)

    def __init__(self, entries: Iterable[tuple[str, T]]) -> None:
        self._by_hash: dict[bytes, tuple[bytes, T]] = {}
        for digest_hex, value in entries:
            digest = bytes.fromhex(digest_hex)
            self._by_hash[digest] = (digest, value)

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, key: str) -> T | None:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        hit = self._by_hash.get(digest)
        if hit is None:
            return None
        stored, value = hit
        return value if hmac.compare_digest(stored, digest) else None
