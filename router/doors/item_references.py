"""``item_reference`` input items of the Responses API, resolved from the gateway's response store.

An ``item_reference`` (``{"type": "item_reference", "id": "msg_…"}``, Responses API reference:
input items) stands for an output item of an earlier stored response. Clients built on the Vercel AI
SDK's OpenAI Responses provider (opencode among them) send every earlier assistant message,
reasoning item and call that way while ``store`` is on (its default), trusting the server to hold
them. The gateway can: an output item's id is its response's id plus its index
(``responses_rendering._item_id``: ``<prefix>_<response hex>_<index>``), so one store read per
referenced response finds it. A reference the store does not hold (``store: false``, expired,
another tenant's, not ours) is a 404, as OpenAI answers for an unknown item.
"""

from __future__ import annotations

from typing import Any

from router.doors.openai_responses import ResponseNotFound
from router.doors.response_store import ResponseStore, StoredResponse

ITEM_REFERENCE = "item_reference"


def has_references(items: Any) -> bool:
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("type") == ITEM_REFERENCE for item in items)


def _location(item_id: str) -> tuple[str, int] | None:
    """(response id, output index) an output item id names, or None when it is not one of ours."""
    _, _, rest = item_id.partition("_")
    hex_id, _, index = rest.rpartition("_")
    if not hex_id or not index.isdigit():
        return None
    return "resp_" + hex_id, int(index)


async def resolve(items: list[Any], store: ResponseStore, owner: str | None) -> list[Any]:
    """``items`` with every ``item_reference`` replaced by the stored item it names."""
    responses: dict[str, StoredResponse | None] = {}
    out: list[Any] = []
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and item.get("type") == ITEM_REFERENCE):
            out.append(item)
            continue
        item_id = item.get("id")
        where = _location(item_id) if isinstance(item_id, str) else None
        found = None
        if where is not None:
            response_id, index = where
            if response_id not in responses:
                responses[response_id] = await store.get(response_id, owner=owner)
            stored = responses[response_id]
            output = stored.response.get("output") if stored is not None else None
            if isinstance(output, list) and index < len(output) and output[index].get("id") == item_id:
                found = output[index]
        if found is None:
            raise ResponseNotFound(f"Item with id '{item_id}' not found (input[{i}]): only items of stored "
                                   "responses (store: true) can be referenced.", param=f"input[{i}].id")
        out.append(found)
    return out
