"""Count the round trips a redis-py asyncio client makes, at the connection.

Every command, and every pipeline, is written with one ``send_packed_command`` call and then its
replies are read: one call is one round trip. Counting there sees what the client really sends
(connection handshakes, ``SCRIPT LOAD`` after a ``NOSCRIPT``), not what our code thinks it sends.
Install it before the client opens its first connection.
"""

from __future__ import annotations

from typing import Any


class RoundTrips:
    def __init__(self) -> None:
        self.count = 0


def count_round_trips(client: Any) -> RoundTrips:
    """Make the client's pool open counting connections; returns the live counter."""
    pool = client.connection_pool
    base: Any = pool.connection_class
    counter = RoundTrips()

    class CountingConnection(base):  # type: ignore[misc, valid-type]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            await super().send_packed_command(command, check_health)

    pool.connection_class = CountingConnection
    return counter
