"""Optional client-key authentication (keys from env or a file, compared in constant time).

A key arrives as ``Authorization: Bearer <key>`` (OpenAI's SDKs and most clients) or as
``x-api-key: <key>`` (Anthropic's SDK); ``check_request`` accepts either, on every door.
With a key directory (``router.tenants.store.TenantStore``: a tenants file with hashed keys, plus
``ROUTER_CLIENT_KEYS`` as the tenant ``default``), the directory decides, and ``identify_request``
returns what the key stands for (its tenant and limits).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from router.errors import AuthenticationFailed


class KeyDirectory(Protocol):
    """Keys by hash, and what each stands for (``router.tenants.store.TenantStore``)."""

    @property
    def auth_enabled(self) -> bool: ...

    def identify(self, authorization: str | None) -> Any: ...


def legacy_keys(inline: str, file: Path | None) -> list[str]:
    """``ROUTER_CLIENT_KEYS`` (comma-separated) and ``ROUTER_CLIENT_KEYS_FILE`` (one per line)."""
    keys = [k.strip() for k in inline.split(",")]
    if file is not None:
        keys += [line.strip() for line in file.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    return [k for k in keys if k]


class ClientAuth:
    def __init__(self, keys: list[str], directory: KeyDirectory | None = None) -> None:
        self._keys = [k.encode() for k in keys if k]
        self.directory = directory

    @classmethod
    def from_settings(cls, inline: str, file: Path | None, directory: KeyDirectory | None = None) -> ClientAuth:
        return cls(legacy_keys(inline, file), directory)

    @property
    def enabled(self) -> bool:
        return self.directory.auth_enabled if self.directory is not None else bool(self._keys)

    @staticmethod
    def _authorization(headers: Mapping[str, str]) -> str | None:
        authorization = headers.get("authorization")
        if authorization is None and (api_key := headers.get("x-api-key")) is not None:
            authorization = "Bearer " + api_key
        return authorization

    def check_request(self, headers: Mapping[str, str]) -> None:
        """The request's key, from ``Authorization: Bearer`` or else ``x-api-key`` (lower-cased names)."""
        if not self.enabled:
            return
        self.check(self._authorization(headers))

    def identify_request(self, headers: Mapping[str, str]) -> Any:
        """What the request's key stands for (401 for a missing or unknown key); None without a directory."""
        if self.directory is None:
            self.check_request(headers)
            return None
        return self.identify(self._authorization(headers))

    def identify(self, authorization: str | None) -> Any:
        assert self.directory is not None
        found = self.directory.identify(authorization)
        if found is None:
            if not authorization or not authorization[:7].lower() == "bearer ":
                raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>' or "
                                           "'x-api-key: <key>'.")
            raise AuthenticationFailed("Incorrect API key provided.")
        return found

    def check(self, authorization: str | None) -> None:
        if self.directory is not None:
            self.identify(authorization)
            return
        if not self._keys:
            return
        if not authorization or not authorization[:7].lower() == "bearer ":
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        offered = authorization[7:].strip().encode()
        # Compare against every key without stopping early, so timing reveals nothing.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(offered, key)
        if not matched:
            raise AuthenticationFailed("Incorrect API key provided.")
