"""The policy in force, and its hot reload.

Requests take a reference to the ``LoadedPolicy`` current when they start and keep it to the end,
so a swap never fails an in-flight request. The file is polled (cheap ``stat``; content hash on
change), which also follows Kubernetes ConfigMap updates (an atomic symlink swap); SIGHUP forces a
check. An invalid new file keeps the old policy and logs every problem.

A file caught half-written must never be applied: many truncations of a policy still validate
(a missing section silently takes its defaults). So a polled change is applied only once the
file has been seen unchanged by two polls in a row, and only when it keeps every top-level section
and every key of the settings blocks (``retry``, ``swarm``, ...) that the policy in force sets
(dropping one on purpose needs a restart). The last reload's result and problems are in
``last_reload`` (shown on the status page).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from router.policy.loader import LoadedPolicy, PolicyError, load_policy_text, log_disabled

log = logging.getLogger("router.policy")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    result: str  # applied | rejected
    at: float  # unix time
    version: str | None = None  # of the applied file
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"result": self.result, "at": round(self.at, 3), "version": self.version, "problems": self.problems}


# Sections whose members come and go with edits (a backend, an alias); every other mapping section
# is a block of settings whose missing keys would silently take their defaults.
_COLLECTIONS = frozenset({"backends", "aliases", "tasks", "quality", "quality_sources", "estimates"})


def _sections(text: str) -> set[str]:
    """Top-level keys of a policy text and the keys of its settings blocks (``retry.window``)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return set()
    if not isinstance(raw, dict):
        return set()
    found = {str(k) for k in raw}
    for name, value in raw.items():
        if name not in _COLLECTIONS and isinstance(value, dict):
            found.update(f"{name}.{key}" for key in value)
    return found


class PolicyStore:
    def __init__(self, path: Path, *, env: Mapping[str, str],
                 on_change: Callable[[LoadedPolicy], None] | None = None,
                 on_result: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._env = env
        self._on_change = on_change
        self._on_result = on_result
        self._text_hash = ""
        self._stat: tuple[float, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen: str | None = None  # digest of a changed file seen once, waiting for a second look
        self._sections: set[str] = set()
        self.last_reload: ReloadResult | None = None
        self.current = self._load()

    def _fingerprint(self) -> tuple[float, int, int] | None:
        try:
            st = os.stat(self.path)  # follows symlinks, so a ConfigMap swap changes it
        except OSError:
            return None
        return (st.st_mtime, st.st_size, st.st_ino)

    def _load(self) -> LoadedPolicy:
        text = self.path.read_text(encoding="utf-8")
        loaded = load_policy_text(text, source=str(self.path), env=self._env)
        self._stat = self._fingerprint()
        self._text_hash = hashlib.sha256(text.encode()).hexdigest()
        self._sections = _sections(text)
        log_disabled(loaded)
        return loaded

    def _reject(self, digest: str, exc: PolicyError) -> None:
        self._text_hash = digest  # do not re-log the same broken file every poll
        log.error("policy reload rejected, keeping version %s:\n%s", self.current.policy.version, exc)
        self.last_reload = ReloadResult("rejected", time.time(), problems=list(exc.problems))
        if self._on_result:
            self._on_result("rejected")

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Swap in the file's policy if it changed, is stable and valid. Returns True on a swap.

        ``force`` (SIGHUP: the operator says the write is done) skips the wait for a second look."""
        fingerprint = self._fingerprint()
        if not force and fingerprint == self._stat and self._seen is None:
            return False
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            log.error("policy %s unreadable, keeping the policy in force: %s", self.path, exc.strerror)
            self._stat = fingerprint
            return False
        digest = hashlib.sha256(text.encode()).hexdigest()
        self._stat = fingerprint
        if digest == self._text_hash:
            self._seen = None
            return False
        if not force and self._seen != digest:
            self._seen = digest  # changed since the last look: maybe still being written
            return False
        self._seen = None
        missing = sorted(self._sections - _sections(text))
        if missing:
            self._reject(digest, PolicyError(str(self.path), [
                f"{name}: the policy in force sets this and the new file does not (a truncated write?); "
                f"write it out or restart to drop it" for name in missing]))
            return False
        try:
            loaded = load_policy_text(text, source=str(self.path), env=self._env)
        except PolicyError as exc:
            self._reject(digest, exc)
            return False
        self._text_hash = digest
        self._sections = _sections(text)
        self.current = loaded
        self.last_reload = ReloadResult("applied", time.time(), version=loaded.policy.version)
        log_disabled(loaded)
        log.info("policy reloaded: %s version %s", loaded.policy.name, loaded.policy.version)
        if self._on_change:
            self._on_change(loaded)
        if self._on_result:
            self._on_result("applied")
        return True

    def start(self, interval_s: float) -> None:
        if interval_s > 0:
            self._task = asyncio.create_task(self._poll(interval_s), name="policy-reload")
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: self.reload_if_changed(force=True))

    async def _poll(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.reload_if_changed()
            except Exception:  # never let the watcher die
                log.exception("policy reload check failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
