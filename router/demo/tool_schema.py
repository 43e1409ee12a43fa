"""What a real upstream checks in a tool's JSON schema before it accepts the request.

OpenAI answers 400 ``invalid_request_error`` ("Invalid schema for function 'f': 5 is not of type
'object', 'boolean'", param ``tools[0].function.parameters``) and Anthropic 400 ``tools.0.custom.
input_schema: ...`` for a schema that is not one; vLLM/SGLang reject it when they build the guided
decoding grammar. The demo does the same, so the gateway meets the 400 a real service sends.
"""

from __future__ import annotations

from typing import Any

_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_MAX_DEPTH = 64  # deeper than any real tool; the check itself stays bounded


def schema_problem(schema: Any, where: str, depth: int = 0) -> str | None:
    """Why ``schema`` is not a usable JSON schema (named by its path), or None."""
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"Invalid schema at {where}: {schema!r:.40} is not of type 'object', 'boolean'."
    if depth > _MAX_DEPTH:
        return f"Invalid schema at {where}: nested too deeply."
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if not all(isinstance(k, str) and k in _TYPES for k in kinds):
        return f"Invalid schema at {where}.type: {kind!r:.40} is not a JSON schema type."
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            return f"Invalid schema at {where}.properties: {properties!r:.40} is not of type 'object'."
        for name, sub in properties.items():
            if (problem := schema_problem(sub, f"{where}.properties.{name}", depth + 1)) is not None:
                return problem
    required = schema.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        return f"Invalid schema at {where}.required: expected an array of strings."
    items = schema.get("items")
    if items is not None and (problem := schema_problem(items, f"{where}.items", depth + 1)) is not None:
        return problem
    return None
