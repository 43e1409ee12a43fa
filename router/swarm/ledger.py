"""The budget ledger of one swarm run: reserve before a call, settle on actual usage.

``spent + reserved <= ceiling`` holds at every moment: a reservation that does not fit is refused,
and the caller hands each upstream call exactly its reservation as the money it may spend (the
dispatcher caps the call's output tokens with it), so actual cost stays within the ceiling too.
One event loop, no awaits inside: no lock needed.
"""

from __future__ import annotations

from dataclasses import dataclass

_EPS = 1e-12  # float dust


@dataclass(slots=True)
class Reservation:
    amount: float
    settled: bool = False


class BudgetLedger:
    def __init__(self, ceiling_usd: float) -> None:
        self.ceiling = ceiling_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.refused = 0  # reservations that did not fit (agents not spawned for budget)

    @property
    def remaining(self) -> float:
        """What is neither spent nor promised."""
        return max(0.0, self.ceiling - self.spent - self.reserved)

    def reserve(self, amount: float) -> Reservation | None:
        """Hold ``amount`` for one call, or None when the remainder cannot pay for it.

        A zero amount (a free backend) always fits; the dispatcher then does not cap the call.
        """
        if amount < 0 or amount > self.remaining + _EPS:
            self.refused += 1
            return None
        self.reserved += amount
        return Reservation(amount)

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Release the hold and book what the call really cost (0 for a failed attempt)."""
        if reservation.settled:
            return
        reservation.settled = True
        self.reserved = max(0.0, self.reserved - reservation.amount)
        self.spent += actual_usd

    def release(self, reservation: Reservation) -> None:
        self.settle(reservation, 0.0)
