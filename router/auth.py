"""Optional client-key authentication (keys from env or a file, compared in constant time).

A key arrives as ``Authorization: Bearer <key>`` (OpenAI's SDKs and most clients) or as
``x-api-key: <key>`` (Anthropic's SDK); ``check_request`` accepts either, on every door.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

from router.errors import AuthenticationFailed


class ClientAuth:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    @classmethod
    def from_settings(cls, inline: str, file: Path | None) -> ClientAuth:
        keys = [k.strip() for k in inline.split(",")]
        if file is not None:
            keys += [line.strip() for line in file.read_text(encoding="utf-8").splitlines()
                     if line.strip() and not line.lstrip().startswith("#")]
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check_request(self, headers: Mapping[str, str]) -> None:
        """The request's key, from ``Authorization: Bearer`` or else ``x-api-key`` (lower-cased names)."""
        if not self._keys:
            return
        authorization = headers.get("authorization")
        if authorization is None and (api_key := headers.get("x-api-key")) is not None:
            authorization = "Bearer " + api_key
        self.check(authorization)

    def check(self, authorization: str | None) -> None:
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
