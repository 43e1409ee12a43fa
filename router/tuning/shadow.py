"""The shadow policy: a candidate decided next to the live one on every request, never dispatched.

It runs on the decision log's writer thread, after the answer has gone out, from the request's
decision record — the same inputs ``model-router replay`` uses, so what the dashboards show for
the shadow is what replay would say about those requests. Promoting the shadow is copying its file
over the live policy (a hot reload); rolling back is copying the old one back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from router.engine.decide import Decision, decide
from router.engine.signals import PriorSignals
from router.policy.loader import LoadedPolicy, PolicyError, load_policy_file
from router.tuning.record import RecordedSignals, label_under, replay_inputs

log = logging.getLogger("router.shadow")
RECHECK_S = 2.0


class ShadowPolicy:
    """Loads the shadow policy file and reloads it when it changes (checked every ``RECHECK_S``)."""

    def __init__(self, path: Path, *, env: Mapping[str, str]) -> None:
        self.path = path
        self._env = dict(env)
        self._mtime = -1.0
        self._checked = 0.0
        self.loaded: LoadedPolicy | None = None
        self._refresh(force=True)

    def _refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_S:
            return
        self._checked = now
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            if force:
                log.warning("shadow policy %s: %s; no shadow decisions until it exists", self.path, exc)
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self.loaded = load_policy_file(self.path, env=self._env)
            log.info("shadow policy %s loaded (version %s)", self.path, self.loaded.policy.version)
        except PolicyError as exc:
            log.warning("shadow policy %s is invalid, keeping the previous one: %s", self.path, exc)

    def decide(self, record: dict[str, Any]) -> Decision | None:
        """The shadow's decision for a logged request (None when there is no valid shadow)."""
        self._refresh()
        if self.loaded is None:
            return None
        policy = self.loaded.policy
        inputs = replay_inputs(record)
        label = label_under(record, policy.classifier.confidence_floor, policy.classifier.fallback_task_type)
        direct = inputs.direct_route if inputs.direct_route is None or policy.resolve_model(inputs.direct_route) \
            else None
        if inputs.direct_route is not None and direct is None:
            return None  # the shadow does not know the route the client named
        return decide(policy, inputs.facts, label, inputs.limits,
                      RecordedSignals(record.get("signals"), PriorSignals(policy)),
                      forced_mode=inputs.forced_mode, direct_route=direct)


def shadow_path(live_source: str | None, policy_shadow: str | None, setting: str | None) -> Path | None:
    """The setting wins; a policy's ``shadow:`` is relative to the live policy file."""
    if setting:
        return Path(setting)
    if not policy_shadow:
        return None
    path = Path(policy_shadow)
    if not path.is_absolute() and live_source:
        path = Path(live_source).parent / path
    return path
