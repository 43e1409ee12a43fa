"""The front doors in the OpenAPI document: they bypass the framework, so they are described here."""

from __future__ import annotations

from typing import Any

CHAT_BODY: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "messages"],
    "properties": {"model": {"type": "string", "example": "auto"},
                   "messages": {"type": "array", "items": {"type": "object"}},
                   "stream": {"type": "boolean"},
                   "router": {"type": "object", "properties": {
                       "max_cost_usd": {"type": "number"}, "latency_budget_ms": {"type": "number"},
                       "mode": {"type": "string"}, "task_type": {"type": "string"}}}}}}}}

MESSAGES_BODY: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "messages", "max_tokens"],
    "properties": {"model": {"type": "string", "example": "auto"}, "max_tokens": {"type": "integer"},
                   "system": {}, "messages": {"type": "array", "items": {"type": "object"}},
                   "stream": {"type": "boolean"}, "router": CHAT_BODY["content"]["application/json"]["schema"][
                       "properties"]["router"]}}}}}

RESPONSES_BODY: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "input"],
    "properties": {"model": {"type": "string", "example": "auto"}, "input": {}, "instructions": {"type": "string"},
                   "previous_response_id": {"type": "string"}, "store": {"type": "boolean"},
                   "stream": {"type": "boolean"}, "router": CHAT_BODY["content"]["application/json"]["schema"][
                       "properties"]["router"]}}}}}
_RESPONSE_ID = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}

# (method, path) -> OpenAPI operation, for every door path (see ``router.app.DOORS``).
DOOR_OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chat/completions"): {
        "summary": "Chat completions (OpenAI), routed", "requestBody": CHAT_BODY,
        "responses": {"200": {"description": "chat.completion, or SSE chunks when stream is true"}}},
    ("POST", "/v1/messages"): {
        "summary": "Messages (Anthropic), routed", "requestBody": MESSAGES_BODY,
        "responses": {"200": {"description": "message, or Anthropic's SSE events when stream is true"}}},
    ("POST", "/v1/messages/count_tokens"): {
        "summary": "Count a Messages request's input tokens (the router's estimate)", "requestBody": MESSAGES_BODY,
        "responses": {"200": {"description": "{input_tokens}"}}},
    ("POST", "/v1/responses"): {
        "summary": "Responses (OpenAI), routed; stored for previous_response_id unless store is false",
        "requestBody": RESPONSES_BODY,
        "responses": {"200": {"description": "response, or the Responses SSE events when stream is true"}}},
    ("GET", "/v1/responses/{response_id}"): {
        "summary": "A stored response", "parameters": [_RESPONSE_ID],
        "responses": {"200": {"description": "response"}, "404": {"description": "unknown or expired"}}},
    ("DELETE", "/v1/responses/{response_id}"): {
        "summary": "Delete a stored response", "parameters": [_RESPONSE_ID],
        "responses": {"200": {"description": "response.deleted"}}},
    ("POST", "/v1/responses/{response_id}/cancel"): {
        "summary": "Cancel a background response (every response here is foreground: 400)",
        "parameters": [_RESPONSE_ID], "responses": {"400": {"description": "not a background response"}}},
}


def add_door_operations(schema: dict[str, Any]) -> dict[str, Any]:
    paths = schema.setdefault("paths", {})
    for (method, path), operation in DOOR_OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = operation
    return schema
