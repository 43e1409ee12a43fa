"""A circuit breaker per backend: closed → open (consecutive failures or error rate over a window)
→ half-open after ``open_s`` (a few probes pass) → closed on a probe's success, open again on failure.

Every attempt holds a ticket from ``acquire()``: ``PASS`` while closed, ``PROBE`` while half-open.
Only results that belong to the current state count — a slow request admitted while the circuit was
closed cannot close it again after it opened, and an attempt that ends without a verdict (the client
went away, the upstream blamed the request) hands its probe slot back with ``cancel()``, so a
half-open circuit can never be left with every slot taken.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from router.policy.model import CircuitSettings

Ticket = Literal["pass", "probe"]
PASS: Ticket = "pass"
PROBE: Ticket = "probe"


class CircuitBreaker:
    def __init__(self, settings: CircuitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._state = "closed"
        self._opened_at = 0.0
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=settings.window)
        self._probes_in_flight = 0
        self.opened_count = 0  # how many times it opened (for tests and the status page)

    @property
    def state(self) -> str:
        if self._state == "open" and self._clock() - self._opened_at >= self.settings.open_s:
            self._state = "half_open"
            self._probes_in_flight = 0
        return self._state

    def acquire(self) -> Ticket | None:
        """May an attempt go to this backend now? None when not; a half-open slot is reserved."""
        state = self.state
        if state == "closed":
            return PASS
        if state == "half_open" and self._probes_in_flight < self.settings.half_open_probes:
            self._probes_in_flight += 1
            return PROBE
        return None

    def allow(self) -> bool:
        """``acquire()`` as a yes/no (the reservation, if any, must be ended with ``record``)."""
        return self.acquire() is not None

    def record(self, success: bool, ticket: Ticket = PASS) -> None:
        """The verdict of an attempt admitted with ``ticket``."""
        state = self.state
        if ticket == PROBE:
            if state != "half_open":
                return  # the circuit moved on (re-opened by another probe); nothing to settle
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            if success:
                self._close()
            else:
                self._open()
            return
        if state != "closed":
            return  # admitted before the circuit opened: old news about the backend
        self._recent.append(success)
        self._consecutive = 0 if success else self._consecutive + 1
        if self._consecutive >= self.settings.consecutive_failures:
            self._open()
        elif len(self._recent) >= self.settings.window:
            failures = self._recent.count(False)
            if failures / len(self._recent) >= self.settings.error_rate:
                self._open()

    def cancel(self, ticket: Ticket) -> None:
        """The attempt ended without saying anything about the backend's health."""
        if ticket == PROBE and self._state == "half_open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._consecutive = 0
        self._probes_in_flight = 0
        self.opened_count += 1

    def _close(self) -> None:
        self._state = "closed"
        self._recent.clear()
        self._consecutive = 0
        self._probes_in_flight = 0
