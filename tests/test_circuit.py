"""The circuit breaker on its own, with a hand-driven clock."""

from __future__ import annotations

from router.engine.circuit import PASS, PROBE, CircuitBreaker
from router.policy.model import CircuitSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(**settings: float) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    cfg = CircuitSettings(**{"consecutive_failures": 3, "error_rate": 0.5, "window": 10, "open_s": 5,
                             "half_open_probes": 1, **settings})
    return CircuitBreaker(cfg, clock), clock


def test_opens_on_consecutive_failures_and_rejects_while_open() -> None:
    cb, _ = breaker()
    for _ in range(2):
        assert cb.acquire() == PASS
        cb.record(False)
    assert cb.state == "closed"
    cb.record(False)
    assert cb.state == "open"
    assert cb.acquire() is None


def test_opens_on_error_rate_over_the_window() -> None:
    cb, _ = breaker(consecutive_failures=100, window=10, error_rate=0.5)
    for i in range(9):
        cb.record(i % 2 == 0)  # 4 failures in 9: below the window length, stays closed
    assert cb.state == "closed"
    cb.record(False)  # 5 / 10
    assert cb.state == "open"


def test_half_open_admits_the_configured_probes_and_a_success_closes() -> None:
    cb, clock = breaker(half_open_probes=2)
    for _ in range(3):
        cb.record(False)
    clock.now += 5
    assert cb.state == "half_open"
    assert cb.acquire() == PROBE
    assert cb.acquire() == PROBE
    assert cb.acquire() is None  # both probe slots taken
    cb.record(True, PROBE)
    assert cb.state == "closed"
    assert cb.acquire() == PASS


def test_a_failed_probe_opens_again_for_another_open_period() -> None:
    cb, clock = breaker()
    for _ in range(3):
        cb.record(False)
    clock.now += 5
    assert cb.acquire() == PROBE
    cb.record(False, PROBE)
    assert cb.state == "open"
    clock.now += 4.9
    assert cb.acquire() is None
    clock.now += 0.2
    assert cb.acquire() == PROBE
    assert cb.opened_count == 2


def test_a_cancelled_probe_frees_its_slot() -> None:
    """A client that leaves mid-probe must not leave the circuit half-open with no slot forever."""
    cb, clock = breaker()
    for _ in range(3):
        cb.record(False)
    clock.now += 5
    assert cb.acquire() == PROBE
    assert cb.acquire() is None
    cb.cancel(PROBE)
    assert cb.acquire() == PROBE


def test_verdicts_from_before_the_circuit_opened_do_not_count() -> None:
    cb, clock = breaker()
    assert cb.acquire() == PASS  # a slow request, admitted while closed
    for _ in range(3):
        cb.record(False)
    assert cb.state == "open"
    cb.record(True, PASS)  # it finally succeeds: old news, the circuit stays open
    assert cb.state == "open"
    clock.now += 5
    assert cb.acquire() == PROBE
    cb.record(True, PASS)  # still not a probe's verdict
    assert cb.state == "half_open"
    cb.record(True, PROBE)
    assert cb.state == "closed"
