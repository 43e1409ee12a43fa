"""A circuit breaker per backend: closed → open (consecutive failures or error rate over a window)
→ half-open after ``open_s`` (a few probes pass) → closed on a probe's success, open again on failure.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from router.policy.model import CircuitSettings


class CircuitBreaker:
    def __init__(self, settings: CircuitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._state = "closed"
        self._opened_at = 0.0
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=settings.window)
        self._probes_in_flight = 0

    @property
    def state(self) -> str:
        if self._state == "open" and self._clock() - self._opened_at >= self.settings.open_s:
            self._state = "half_open"
            self._probes_in_flight = 0
        return self._state

    def allow(self) -> bool:
        """May a request go to this backend now? (Reserves a probe slot when half-open.)"""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._probes_in_flight < self.settings.half_open_probes:
            self._probes_in_flight += 1
            return True
        return False

    def record(self, success: bool) -> None:
        state = self.state
        if state == "half_open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if success:
                self._close()
            else:
                self._open()
            return
        self._recent.append(success)
        self._consecutive = 0 if success else self._consecutive + 1
        failures = self._recent.count(False)
        if state == "closed" and (
                self._consecutive >= self.settings.consecutive_failures
                or (len(self._recent) >= self.settings.window
                    and failures / len(self._recent) >= self.settings.error_rate)):
            self._open()

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._consecutive = 0

    def _close(self) -> None:
        self._state = "closed"
        self._recent.clear()
        self._consecutive = 0
