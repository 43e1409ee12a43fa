"""Structured output for the demo upstreams: a plausible JSON value for a JSON Schema.

Real services answer ``response_format: json_schema`` (OpenAI, vLLM's guided decoding, Moonshot) and
Anthropic's ``output_format`` with a document that validates against the schema; clients such as
LangChain's ``with_structured_output`` and the SDK's ``parse`` depend on it. Every property (not
only the required ones: strict schemas require them all) gets a value, nested objects and arrays
included, ``$ref``s into ``$defs`` resolved. Pure and deterministic.
"""

from __future__ import annotations

from typing import Any

from router.demo.answers import keywords, quote

_MAX_DEPTH = 8


def instance(schema: Any, question: str) -> Any:
    """A value that validates against ``schema`` (the subset of JSON Schema that APIs accept)."""
    root = schema if isinstance(schema, dict) else {}
    return _value(root, root, "answer", question, 0)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(node.get("$ref"), str) and seen < _MAX_DEPTH:
        path = node["$ref"].removeprefix("#/").split("/")
        target: Any = root
        for part in path:
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}} if isinstance(target, dict) else {}
        seen += 1
    return node


def _value(node: Any, root: dict[str, Any], name: str, question: str, depth: int) -> Any:
    if not isinstance(node, dict):
        return _text(name, question)
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    if "default" in node and depth > 0:
        return node["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = node.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")] or options
            if key == "allOf":
                merged: dict[str, Any] = {}
                for option in usable:
                    merged.update(_resolve(option, root) if isinstance(option, dict) else {})
                return _value(merged, root, name, question, depth)
            return _value(usable[0], root, name, question, depth)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in node else "string"
    if depth >= _MAX_DEPTH:
        return {"object": {}, "array": [], "string": "", "integer": 0, "number": 0, "boolean": False}.get(kind)
    if kind == "object":
        props = node.get("properties") or {}
        return {key: _value(spec, root, key, question, depth + 1) for key, spec in props.items()}
    if kind == "array":
        count = max(1, int(node.get("minItems") or 1))
        return [_value(node.get("items") or {}, root, name, question, depth + 1) for _ in range(count)]
    if kind == "integer":
        return max(int(node.get("minimum", 1)), min(int(node.get("maximum", 3)), 3))
    if kind == "number":
        return float(max(float(node.get("minimum", 1)), min(float(node.get("maximum", 3.5)), 3.5)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _text(name, question, int(node.get("maxLength") or 0) or None)


def _text(name: str, question: str, limit: int | None = None) -> str:
    words = keywords(question, 3)
    low = name.lower()
    if any(k in low for k in ("name", "title", "topic", "city", "label")):
        text = " ".join(w.capitalize() for w in words[:2]) or "Example"
    elif any(k in low for k in ("summary", "answer", "text", "description", "reason", "explanation")):
        text = f"About {quote(question, 60)}: {', '.join(words) or 'a short answer'}."
    else:
        text = " ".join(words) or name
    return text[:limit] if limit else text
