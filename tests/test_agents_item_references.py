"""``item_reference`` input items: how clients on the Vercel AI SDK's OpenAI Responses provider
(opencode among them) send history while ``store`` is on — every earlier assistant message,
reasoning item and call as ``{"type": "item_reference", "id": …}``. The gateway resolves them from
its response store; what it cannot hold is a 404 in OpenAI's shape.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Gateway

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather for a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
QUESTION = {"role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]}


def create(gw: Gateway, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/responses", json={"model": "kimi:agent", **body},
                      headers={"authorization": "Bearer test-key"}, timeout=30)


def test_referenced_items_are_the_stored_ones(gateway: Gateway) -> None:
    first = create(gateway, input=[QUESTION], tools=[WEATHER], reasoning={"effort": "low"})
    assert first.status_code == 200, first.text
    output = first.json()["output"]
    call = next(i for i in output if i["type"] == "function_call")
    # The AI SDK's next turn: the earlier output by reference, the tool's result in full.
    history = [QUESTION, *({"type": "item_reference", "id": i["id"]} for i in output),
               {"type": "function_call_output", "call_id": call["call_id"], "output": "18 C, clear"}]
    second = create(gateway, input=history, tools=[WEATHER])
    assert second.status_code == 200, second.text
    sent = gateway.demo.stats("kimi")["last_requests"][-1]["body"]["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == call["call_id"]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": call["arguments"]}
    assert sent[-1] == {"role": "tool", "tool_call_id": call["call_id"], "content": "18 C, clear"}
    # … and the stored conversation holds the items themselves: a previous_response_id turn works
    third = create(gateway, input="And tomorrow?", previous_response_id=second.json()["id"], tools=[WEATHER])
    assert third.status_code == 200, third.text


def test_a_reference_the_store_does_not_hold_is_a_404(gateway: Gateway) -> None:
    unstored = create(gateway, input=[QUESTION], store=False).json()["output"][-1]["id"]
    for item_id in (unstored, "msg_nothere_0", "not-one-of-ours"):
        response = create(gateway, input=[QUESTION, {"type": "item_reference", "id": item_id}])
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["param"] == "input[1].id" and item_id in error["message"]
