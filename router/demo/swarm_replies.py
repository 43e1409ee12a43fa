"""Replies to the gateway's swarm roles, recognised by a phrase in the system prompt.

- planner (`model-router swarm planner`): a JSON plan with one subtask per enumerated item of the last
  user message (or of its `<request>…</request>` part, if any). `DEMO_CYCLE` in the request yields a
  plan with a dependency cycle; `DEMO_BAD_PLAN` yields non-JSON text, unless the request already
  contains that bad reply (the repair attempt).
- worker (`model-router swarm worker`): a short answer about its instruction. Given MCP tools, it
  first calls one — `calculate` when the instruction holds an arithmetic expression, else `search`
  with the instruction as the query, unless it asks for a proof or derivation — and then answers
  citing what the tool returned (or saying that the tool failed). Told that a tool server is
  unavailable, it says so.
- aggregator (`model-router swarm aggregator`): an intro, then one section per `### ` section of the
  user message, in order.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from router.demo.answers import Reply, ToolCall, body_sentences, keywords, quote
from router.demo.conversation import Conversation

BAD_PLAN_REPLY = (
    "Sure! I would split this into a few parts and handle each one in turn, then combine them. "
    "[demo: this planner reply is deliberately not JSON]"
)
_BAD_PLAN_MARK = "[demo: this planner reply is deliberately not JSON]"
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+(.+?)\s*$")
_REQUEST_TAG = re.compile(r"<request>(.*?)</request>", re.S)
_SEPARATORS = re.compile(r"\s*(?:,|;|、|，|；|\band\b)\s*")


def enumerated_items(text: str) -> tuple[str, list[str]]:
    """`(lead, items)`: the request's enumerated items and the text that introduces them."""
    lines = text.splitlines()
    listed = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _LIST_LINE.match(line))]
    if listed:
        first = listed[0][0]
        lead = " ".join(line.strip() for line in lines[:first] if line.strip())
        return lead.rstrip(":：").strip(), [item for _, item in listed]
    for colon in (":", "："):
        if colon in text:
            lead, _, rest = text.partition(colon)
            items = [i.strip(" .。!?") for i in _SEPARATORS.split(rest.strip()) if i.strip(" .。!?")]
            if len(items) >= 2:
                return lead.strip(), items
    questions = [q.strip() for q in re.split(r"(?<=[?？])", text) if q.strip(" \n?？")]
    if len(questions) >= 2:
        return "", questions
    return "", [text.strip()]


def _request_part(text: str) -> str:
    """The user's request, when the planner prompt wraps it in `<request>…</request>`."""
    match = _REQUEST_TAG.search(text)
    return match.group(1).strip() if match else text


def plan(conv: Conversation) -> str:
    """The planner's reply text (JSON, or deliberately broken text for DEMO_BAD_PLAN)."""
    request = conv.last_user
    if "DEMO_BAD_PLAN" in conv.transcript:
        if _BAD_PLAN_MARK not in conv.transcript:
            return BAD_PLAN_REPLY
        # The repair attempt: plan the original request, wherever the orchestrator put it.
        originals = [turn for turn in conv.user_turns if "DEMO_BAD_PLAN" in turn]
        request = (originals[-1] if originals else request).replace(BAD_PLAN_REPLY, "")
    request = _request_part(request).replace("DEMO_CYCLE", "").replace("DEMO_BAD_PLAN", "")
    lead, items = enumerated_items(request)
    lead = quote(lead, 160)
    subtasks: list[dict[str, Any]] = []
    for n, item in enumerate(items, start=1):
        item = quote(item, 200)
        instruction = f"{lead} — only this item: {item}" if lead else item
        subtasks.append({"id": f"t{n}", "instruction": instruction, "depends_on": []})
    if "DEMO_CYCLE" in conv.transcript:
        if len(subtasks) == 1:
            subtasks.append({"id": "t2", "instruction": f"Double-check: {subtasks[0]['instruction']}",
                             "depends_on": []})
        subtasks[0]["depends_on"] = [subtasks[-1]["id"]]
        subtasks[-1]["depends_on"] = [subtasks[0]["id"]]
    return orjson.dumps({"subtasks": subtasks}).decode()


_EXPRESSION = re.compile(r"\(?-?\d[\d.]*(?:\s*(?:\*\*|[-+*/^×%])\s*\(?-?\d[\d.]*\)?)+")
_FAILED = ("failed", "reported an error", "gave no result", "not connected", "no tool named")
_REASONING = re.compile(r"\b(?:prove|derive|show that|explain why)\b")  # worked out, not looked up
_UNAVAILABLE = re.compile(r"^Unavailable tool servers?: (.+)$", re.M)


def _task_of(conv: Conversation) -> str:
    """The subtask's own instruction (first line of the worker prompt), without the `Subtask id:`."""
    first = conv.last_user.split("\n", 1)[0]
    return re.sub(r"^Subtask [^:]+:\s*", "", first).strip()


def worker_reply(conv: Conversation, who: str, tools: list[dict[str, Any]], call_id: str) -> Reply:
    """A tool call first (when tools are offered), then an answer citing the tool's result."""
    task = _task_of(conv)
    names = {str(t.get("name")): t for t in tools}
    if conv.tool_result is not None:
        result = conv.tool_result
        first = result.text.strip().split("\n", 1)[0]
        if any(word in first for word in _FAILED):
            return Reply(None, f"{who}: the {result.name} tool failed ({quote(first, 160)}), so this answer to "
                               f"“{quote(task, 80)}” is not backed by it. {body_sentences(task, 1)}")
        return Reply(None, f"{who} on “{quote(task, 80)}”, citing {result.name}: {quote(first, 200)} "
                           f"{body_sentences(task, 1)}")
    expression = _EXPRESSION.search(task)
    calc = next((n for n in names if n.endswith("calculate")), None)
    search = next((n for n in names if n.endswith("search")), None)
    if expression and calc:
        return Reply(None, "", ToolCall(call_id, calc, orjson.dumps({"expression": expression.group().strip()})
                                        .decode()))
    reasoning = _REASONING.search(task.lower())
    if search and not expression and not reasoning:
        return Reply(None, "", ToolCall(call_id, search, orjson.dumps({"query": quote(task, 160)}).decode()))
    unavailable = _UNAVAILABLE.search(conv.system)
    if unavailable and not expression and not reasoning:
        return Reply(None, f"{who}: could not search for “{quote(task, 80)}” — tool server unavailable "
                           f"({quote(unavailable.group(1), 160)}). {body_sentences(task, 1)}")
    return Reply(None, worker_answer(conv, who))


def worker_answer(conv: Conversation, who: str) -> str:
    instruction = conv.last_user
    return f"{who} on “{quote(instruction, 100)}”: {body_sentences(instruction, 2)}"


def aggregate(conv: Conversation, who: str) -> str:
    text = conv.last_user
    chunks = re.split(r"(?m)^### ", text)
    intro, sections = chunks[0].strip(), chunks[1:]
    if not sections:
        return f"Combined answer from {who}: {body_sentences(text, 2)}"
    subject = f" to “{quote(intro, 100)}”" if intro else ""
    lines = [f"Combined answer{subject} from {len(sections)} agent results ({who}):", ""]
    for section in sections:
        title, _, body = section.partition("\n")
        summary = quote(body.strip(), 240) or f"(no result; see {keywords(title, 1)[0]})"
        lines += [f"### {title.strip()}", summary, ""]
    return "\n".join(lines).rstrip() + "\n"
