"""What a front door is to the ASGI edge: it handles one parsed-off-the-wire request and says how to fail.

The edge (``router.api.front_door``) does what every door shares — auth, the body limit, the
tenant, disconnects — and hands each door an ``Incoming``; the door parses its protocol into the
internal model, runs the pipeline and gives back a ``JsonReply`` or a ``StreamReply``. Errors are
raised as ``RouterError`` and rendered by the door's ``error_body`` in its protocol's shape.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.errors import RouterError
from router.services import Services


@dataclass(slots=True)
class Incoming:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    arrived: float  # perf_counter when the request arrived
    tenant: str | None = None


@dataclass(slots=True)
class JsonReply:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(slots=True)
class StreamReply:
    """Server-sent events: ``frames`` are sent as they come; closing them cancels the work."""

    frames: AsyncGenerator[bytes, None]
    headers: dict[str, str] = field(default_factory=dict)


Reply = JsonReply | StreamReply


def prefer_mode(chat: dict[str, Any], hint: str | None, headers: dict[str, str]) -> None:
    """Use a protocol's own mode hint (Anthropic ``thinking``, Responses ``reasoning.effort``) for
    ``model: auto`` — unless the client chose a mode itself (``X-Router-Mode``, ``router.mode``)."""
    if hint is None or chat["model"] != "auto" or "x-router-mode" in headers:
        return
    controls = chat.get("router")
    if isinstance(controls, dict) and controls.get("mode") is not None:
        return
    chat["router"] = {**(controls or {}), "mode": hint}


class Door(Protocol):
    api: str  # the ``api`` label of its requests: chat, messages, responses

    def error_body(self, exc: RouterError) -> bytes: ...

    async def handle(self, incoming: Incoming, services: Services) -> Reply: ...
