"""The tenants in force: the tenants file (hot-reloaded like the policy) plus the legacy keys.

The file is polled (a cheap ``stat``, then a content hash) every ``interval_s``, so a Kubernetes
Secret update (an atomic symlink swap) or a ``model-router keys revoke`` is in force within one
interval. An invalid file keeps the tenants in force and logs what is wrong
(never a key or a hash: the file holds only hashes, and the errors name tenants and key ids).
Keys from ``ROUTER_CLIENT_KEYS`` / ``ROUTER_CLIENT_KEYS_FILE`` belong to the tenant ``default``
(unlimited unless the file defines a tenant of that name).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from router.tenants.keys import KeyIndex, bearer, key_hash
from router.tenants.limits import KeyLimits
from router.tenants.model import Tenant, TenantsFile

log = logging.getLogger("router.tenants")
DEFAULT_TENANT = "default"


class TenantsError(ValueError):
    """The tenants file is unreadable or invalid (the message lists every problem)."""


def parse_tenants(text: str, source: str) -> TenantsFile:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise TenantsError(f"{source}: not valid YAML ({exc.__class__.__name__})") from None
    try:
        return TenantsFile.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise TenantsError(f"{source}: " + "; ".join(problems)) from None


@dataclass(frozen=True)
class Directory:
    """Everything a request needs, compiled once per reload."""

    tenants: dict[str, Tenant]
    index: KeyIndex[KeyLimits]
    defaults: dict[str, KeyLimits] = field(default_factory=dict)  # tenant -> limits of a key with no overrides
    # A tenants file, or any legacy key, turns authentication on — and it stays on when every key of
    # the file has been revoked (revoking the last key must not open the gateway).
    auth_enabled: bool = False
    # tenant -> the unlimited KeyLimits of a tenant the file does not define (``default`` when
    # authentication is off: every request), built once per reload rather than once per request.
    _unlimited: dict[str, KeyLimits] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def names(self) -> list[str]:
        return sorted({*self.defaults, DEFAULT_TENANT})

    def identify(self, key: str) -> KeyLimits | None:
        return self.index.find(key)

    def tenant_limits(self, name: str) -> KeyLimits:
        limits = self.defaults.get(name) or self._unlimited.get(name)
        if limits is None:
            if len(self._unlimited) >= 256:  # names come from the tenants file and DEFAULT_TENANT: a few
                self._unlimited.clear()
            limits = self._unlimited[name] = KeyLimits.unlimited(name)
        return limits


def compile_directory(parsed: TenantsFile, legacy_keys: Iterable[str], *, from_file: bool = False) -> Directory:
    tenants = dict(parsed.tenants)
    entries: list[tuple[str, KeyLimits]] = []
    defaults: dict[str, KeyLimits] = {}
    for name, tenant in tenants.items():
        defaults[name] = KeyLimits.resolve(name, tenant, None)
        for key in tenant.keys:
            if not key.revoked:
                entries.append((key.sha256, KeyLimits.resolve(name, tenant, key)))
    default = tenants.get(DEFAULT_TENANT)
    legacy = KeyLimits.resolve(DEFAULT_TENANT, default, None) if default else KeyLimits.unlimited(DEFAULT_TENANT)
    for legacy_key in legacy_keys:
        if legacy_key:
            entries.append((key_hash(legacy_key), legacy))
            defaults.setdefault(DEFAULT_TENANT, legacy)
    return Directory(tenants, KeyIndex(entries), defaults, auth_enabled=from_file or bool(entries))


class TenantStore:
    def __init__(self, path: Path | None, *, legacy_keys: Iterable[str] = (),
                 on_change: Callable[[Directory], None] | None = None,
                 on_result: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._legacy = [k for k in legacy_keys if k]
        self._on_change = on_change
        self._on_result = on_result
        self._stat: tuple[float, int, int] | None = None
        self._digest = ""
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Directory], None]] = []
        self.current = self._load_first()

    def add_listener(self, listener: Callable[[Directory], None]) -> None:
        self._listeners.append(listener)

    def _fingerprint(self) -> tuple[float, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size, st.st_ino)

    def _load_first(self) -> Directory:
        if self.path is None:
            return compile_directory(TenantsFile(), self._legacy)
        text = self.path.read_text(encoding="utf-8")
        directory = compile_directory(parse_tenants(text, str(self.path)), self._legacy, from_file=True)
        self._stat = self._fingerprint()
        self._digest = hashlib.sha256(text.encode()).hexdigest()
        log.info("tenants: %d tenant(s) from %s", len(directory.tenants), self.path)
        return directory

    @property
    def auth_enabled(self) -> bool:
        return self.current.auth_enabled

    def identify(self, authorization: str | None) -> KeyLimits | None:
        """The key's limits; None for a missing or unknown key. Auth off (no key anywhere): ``default``."""
        directory = self.current
        if not directory.auth_enabled:
            return directory.tenant_limits(DEFAULT_TENANT)
        key = bearer(authorization)
        return directory.identify(key) if key is not None else None

    def reload_if_changed(self, *, force: bool = False) -> bool:
        if self.path is None:
            return False
        fingerprint = self._fingerprint()
        if not force and fingerprint == self._stat:
            return False
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            log.error("tenants file %s unreadable, keeping the tenants in force: %s", self.path, exc.strerror)
            self._stat = fingerprint
            return False
        self._stat = fingerprint
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            directory = compile_directory(parse_tenants(text, str(self.path)), self._legacy, from_file=True)
        except TenantsError as exc:
            log.error("tenants reload rejected, keeping the tenants in force: %s", exc)
            if self._on_result:
                self._on_result("rejected")
            return False
        self.current = directory
        log.info("tenants reloaded: %d tenant(s)", len(directory.tenants))
        if self._on_change:
            self._on_change(directory)
        for listener in self._listeners:
            listener(directory)
        if self._on_result:
            self._on_result("applied")
        return True

    def start(self, interval_s: float) -> None:
        if self.path is None:
            return
        if interval_s > 0:
            self._task = asyncio.create_task(self._poll(interval_s), name="tenants-reload")

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.reload_if_changed()
            except Exception:
                log.exception("tenants reload check failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
