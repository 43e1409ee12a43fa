"""Deterministic, plausible answers: they quote the question and say which backend and mode answered.

Everything here is a pure function of the request, so the same request always gets the same answer.
The swarm roles (planner, worker, aggregator) are answered by `router.demo.swarm_replies`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from router.demo.conversation import Conversation

_STOPWORDS = frozenset(
    """a an the and or but of to in on for with is are was were be been being how what why when where
    which who whom whose do does did can could should would will shall may might must i you me my we
    our us it its this that these those please explain tell about from as at by into than then there
    their them they your yours give make write list show need want some any each all more most very
    just also not no yes have has had get got one two three use using vs versus between over under
    like such if so here""".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#\-]{2,}|[\u3040-\u30ff\u4e00-\u9fff]{2,}")
_PIECE = re.compile(r"\s*\S+|\s+$")

_SENTENCES = (
    "In short, {a} is the part that decides the outcome here, and {b} follows from it.",
    "Start from {a}: pin down what it has to achieve before weighing alternatives.",
    "The main trade-off is between {a} and {b}; favouring one usually costs some of the other.",
    "For {b}, a simple approach you can measure beats a clever one you cannot.",
    "A common mistake is to treat {a} and {c} as independent, when a change in one shifts the other.",
    "If {c} is a hard constraint, settle it first and let the rest adapt.",
    "A quick check: if the result for {a} looks surprising, re-read the assumptions about {b}.",
    "As a next step, write down one concrete example of {c} and test the answer against it.",
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as OpenAI sends it


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model 'thought' and 'said', before token budgets are applied."""

    reasoning: str | None
    content: str
    tool_call: ToolCall | None = None


def quote(text: str, limit: int = 80) -> str:
    """The text on one line, cut at a word boundary near `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return cut.rstrip(",;:") + "…"


def keywords(text: str, k: int = 3) -> list[str]:
    """Up to `k` salient words of `text` (longest first, ties in order of appearance)."""
    seen: dict[str, tuple[int, str]] = {}  # lower-case word -> (first position, spelling)
    for i, word in enumerate(_WORD.findall(text)):
        low = word.lower()
        if low not in _STOPWORDS and low not in seen:
            seen[low] = (i, word)
    ranked = sorted(seen, key=lambda w: (-len(w), seen[w][0]))[:k]
    chosen = [seen[w][1] for w in sorted(ranked, key=lambda w: seen[w][0])] or ["the question"]
    while len(chosen) < k:
        chosen.append(chosen[len(chosen) % max(1, len(chosen))])
    return chosen


def pieces(text: str) -> list[str]:
    """Word-ish chunks (leading whitespace attached); one piece counts as one token."""
    return _PIECE.findall(text)


def fragments(text: str, size: int = 16) -> list[str]:
    """`text` in pieces of `size` characters, as tool-call arguments are streamed."""
    return [text[i:i + size] for i in range(0, len(text), size)]


def stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def media_note(conv: Conversation) -> str:
    notes = []
    if conv.images:
        notes.append(f"{conv.images} image" + ("s" if conv.images != 1 else ""))
    if conv.videos:
        notes.append(f"{conv.videos} video" + ("s" if conv.videos != 1 else ""))
    return f"I see {' and '.join(notes)}. " if notes else ""


def body_sentences(text: str, count: int) -> str:
    a, b, c = keywords(text)
    start = stable_hash(text) % len(_SENTENCES)
    chosen = [_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(count)]
    return " ".join(s.format(a=a, b=b, c=c) for s in chosen)


def answer_text(question: str, who: str, conv: Conversation) -> str:
    """A modest answer whose length grows with the question."""
    count = max(2, min(7, 2 + len(question.split()) // 12))
    return (
        f"Answer from {who} to “{quote(question)}”: {media_note(conv)}"
        f"{body_sentences(question, count)}"
    )


def reasoning_text(question: str, mode: str, conv: Conversation) -> str:
    a, b, c = keywords(question)
    media = f" There is visual input to take into account ({media_note(conv).strip()})" if (
        conv.images or conv.videos) else ""
    return (
        f"The user asks: “{quote(question, 60)}”. The key terms are {a}, {b} and {c}.{media} "
        f"In {mode} mode I should work out what matters most ({a}), weigh it against {b}, "
        f"and give a concise, practical answer that mentions {c}."
    )


def tool_result_answer(question: str, who: str, conv: Conversation) -> str:
    assert conv.tool_result is not None
    result = conv.tool_result
    return (
        f"Using the result of {result.name} ({quote(result.text, 100) or 'empty'}), here is the answer "
        f"from {who} to “{quote(question)}”: {body_sentences(question + result.text, 2)}"
    )


def pick_tool(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    """The tool a model would call: the one `tool_choice` names, else the first; None for "none"."""
    if tool_choice == "none" or (isinstance(tool_choice, dict) and tool_choice.get("type") == "none"):
        return None
    named = None
    if isinstance(tool_choice, dict):
        named = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    for tool in tools:
        if named is None or tool.get("name") == named:
            return tool
    return tools[0] if tools else None


def tool_arguments(schema: dict[str, Any], question: str) -> dict[str, Any]:
    """Fill the required parameters (or the first one) plausibly from the question."""
    props = schema.get("properties") or {}
    required = [name for name in schema.get("required") or [] if isinstance(name, str)]
    if not required and props:
        required = [next(iter(props))]
    return {name: _value_for(name, props.get(name) or {}, question) for name in required}


def _value_for(name: str, spec: dict[str, Any], question: str) -> Any:
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if spec.get("enum"):
        return spec["enum"][0]
    numbers = re.findall(r"-?\d+(?:\.\d+)?", question)
    if kind in ("integer", "number"):
        value = float(numbers[0]) if numbers else 3.0
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "array":
        return keywords(question, 2)
    if kind == "object":  # nested: every property filled (a forced tool is often a JSON answer)
        from router.demo.structured import instance

        return instance(spec, question)
    low = name.lower()
    if low in ("location", "city", "place", "country"):
        capitalised = re.findall(r"\b[A-Z][a-z]{2,}\b", question)
        names = [w for w in capitalised if w.lower() not in _STOPWORDS]
        return names[-1] if names else "Paris"
    if low in ("unit", "units"):
        return "celsius"
    if any(key in low for key in ("query", "question", "text", "prompt", "search", "input", "q")):
        return quote(question, 120)
    return " ".join(keywords(question, 2))


def chat_reply(
    conv: Conversation,
    *,
    who: str,
    mode: str,
    reasoning: bool,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    call_id: str,
) -> Reply:
    """The reply to an ordinary chat request (not a swarm role).

    `tools` are normalised to `{"name", "parameters"}`. A tool is called when tools are given, the
    choice allows it and the conversation does not already end with a tool result.
    """
    question = conv.last_user or conv.transcript
    thought = reasoning_text(question, mode, conv) if reasoning else None
    if conv.tool_result is not None:
        return Reply(thought, tool_result_answer(question, who, conv))
    tool = pick_tool(tools, tool_choice) if tools else None
    if tool is not None:
        args = tool_arguments(tool.get("parameters") or {}, question)
        call = ToolCall(call_id, str(tool.get("name")), orjson.dumps(args).decode())
        return Reply(thought, "", call)
    return Reply(thought, answer_text(question, who, conv))
