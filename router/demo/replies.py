"""Which reply a request gets: a swarm role's, a tool call, a tool-result answer or a plain answer.

Shared by the OpenAI-style and Anthropic servers; pure, so tests can call it without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.demo import labeller, structured, swarm_replies
from router.demo.answers import Reply, chat_reply, quote, reasoning_text
from router.demo.completion import Completion, finish
from router.demo.conversation import Conversation


@dataclass(frozen=True, slots=True)
class Planned:
    """Everything a server needs to send an answer."""

    mode: str  # instant | thinking | agent (Kimi kinds), default (vendors), or thinking (Claude)
    role: str  # chat | planner | worker | aggregator
    conversation: Conversation
    completion: Completion


def plan_reply(
    conv: Conversation,
    *,
    who: str,
    mode: str,
    reasoning: bool,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    call_id: str,
    max_tokens: int | None,
    stop: list[str],
    json_mode: bool = False,
    json_schema: dict[str, Any] | None = None,
) -> Planned:
    """`tools` are normalised to `{"name", "parameters"}` by the caller; `json_mode` (OpenAI
    `response_format` json_object) wraps a plain answer as `{"answer": ...}`; `json_schema`
    (`json_schema` formats, Anthropic's `output_format`) answers with a value valid against it."""
    role = conv.swarm_role or "chat"
    if labeller.is_labeller_call(conv.system):  # the gateway's cascade asks for a label (no thinking)
        reply = Reply(None, labeller.label_reply(conv.system, conv.last_user))
        return Planned(mode, "labeller", conv, finish(reply, max_tokens=max_tokens, stop=stop))
    if role == "chat":
        reply = chat_reply(conv, who=who, mode=mode, reasoning=reasoning, tools=tools,
                           tool_choice=tool_choice, call_id=call_id)
        if json_schema is not None and reply.tool_call is None:
            value = structured.instance(json_schema, conv.last_user or conv.transcript)
            reply = Reply(reply.reasoning, orjson.dumps(value).decode())
        elif json_mode and reply.tool_call is None:
            reply = Reply(reply.reasoning, orjson.dumps({"answer": reply.content}).decode())
    else:
        thought = reasoning_text(conv.last_user, mode, conv) if reasoning else None
        if role == "planner":
            content = swarm_replies.plan(conv)
            if thought:
                thought = f"I need to split “{quote(conv.last_user, 60)}” into independent subtasks."
        elif role == "worker":
            offered = [] if tool_choice == "none" else tools
            worker = swarm_replies.worker_reply(conv, who, offered, call_id)
            return Planned(mode, role, conv, finish(Reply(thought, worker.content, worker.tool_call),
                                                    max_tokens=max_tokens, stop=stop))
        elif tools and (tool_choice == "required" or isinstance(tool_choice, dict)):
            # An aggregator told to call the client's tool does so (a normal tool_calls answer).
            reply = chat_reply(conv, who=who, mode=mode, reasoning=False, tools=tools, tool_choice=tool_choice,
                               call_id=call_id)
            return Planned(mode, role, conv, finish(Reply(thought, reply.content, reply.tool_call),
                                                    max_tokens=max_tokens, stop=stop))
        elif json_schema is not None:  # the aggregator writes the client's structured answer
            content = orjson.dumps(structured.instance(json_schema, conv.last_user or conv.transcript)).decode()
        else:
            content = swarm_replies.aggregate(conv, who)
        reply = Reply(thought, content)
    return Planned(mode, role, conv, finish(reply, max_tokens=max_tokens, stop=stop))


def stop_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []
