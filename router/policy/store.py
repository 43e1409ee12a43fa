"""The policy in force, and its hot reload.

Requests take a reference to the ``LoadedPolicy`` current when they start and keep it to the end,
so a swap never fails an in-flight request. The file is polled (cheap ``stat``; content hash on
change), which also follows Kubernetes ConfigMap updates (an atomic symlink swap); SIGHUP forces a
check. An invalid new file keeps the old policy and logs every problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from router.policy.loader import LoadedPolicy, PolicyError, load_policy_text, log_disabled

log = logging.getLogger("router.policy")


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
        log_disabled(loaded)
        return loaded

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Swap in the file's policy if it changed and is valid. Returns True on a swap."""
        fingerprint = self._fingerprint()
        if not force and fingerprint == self._stat:
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
            return False
        try:
            loaded = load_policy_text(text, source=str(self.path), env=self._env)
        except PolicyError as exc:
            self._text_hash = digest  # do not re-log the same broken file every poll
            log.error("policy reload rejected, keeping version %s:\n%s", self.current.policy.version, exc)
            if self._on_result:
                self._on_result("rejected")
            return False
        self._text_hash = digest
        self.current = loaded
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
