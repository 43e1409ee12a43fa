"""Chat Completions answers and stream chunks rendered as OpenAI ``Response`` objects and stream events.

References (OpenAI's published API):
- the ``Response`` object: https://platform.openai.com/docs/api-reference/responses/object
- streaming events: https://platform.openai.com/docs/api-reference/responses-streaming — every event
  has a ``sequence_number``; ``response.created``, ``response.in_progress``; per output item
  ``response.output_item.added`` … ``response.output_item.done`` (a message's text inside
  ``response.content_part.added``/``.done`` with ``response.output_text.delta``/``.done``; a function
  call's ``response.function_call_arguments.delta``/``.done``; a reasoning item's
  ``response.reasoning_summary_part.*`` and ``response.reasoning_summary_text.*``); the stream ends
  with ``response.completed``, ``response.incomplete`` or ``response.failed`` (no ``[DONE]``).

``reasoning_content`` (Kimi's thinking, the swarm's progress) is rendered as a reasoning item's
summary: it is the part of ``reasoning`` that clients display.
"""

from __future__ import annotations

import os
import time
from contextvars import ContextVar
from typing import Any

from router import sse
from router.doors import responses_tools

# The stream this request's task is rendering. The shutdown drain ends a request in its own task
# but cannot reach the door's renderer: through this, its error event continues the numbering.
_rendering: ContextVar[ResponsesStreamRenderer | None] = ContextVar("responses_stream", default=None)


def drain_error_event(message: str, *, code: str | None = None, param: str | None = None) -> bytes:
    """The ``error`` event for a stream the gateway cuts short, numbered after the last event sent
    (``sequence_number`` 0 when this task rendered no Responses stream)."""
    renderer = _rendering.get()
    if renderer is None:
        return sse.event("error", {"type": "error", "sequence_number": 0, "code": code, "message": message,
                                   "param": param})
    return renderer.error_event(message, code=code, param=param)


def response_id() -> str:
    # 128 random bits: a response id is the key to a stored conversation, so it must not be guessable.
    return "resp_" + os.urandom(16).hex()


def _item_id(prefix: str, response: str, index: int) -> str:
    """Output item ids derive from their response's (unique with it; a random id per item costs more)."""
    return f"{prefix}_{response.removeprefix('resp_')}_{index}"


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


# finish_reason → why the response is incomplete (None: it completed).
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_object(*, request: dict[str, Any], model: str, id: str, created_at: float, status: str,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                    incomplete_reason: str | None = None, error: dict[str, Any] | None = None,
                    router: Any = None) -> dict[str, Any]:
    """A ``Response``: the request's settings echoed, as the API does, around the output."""
    text_format = (request.get("text") or {}).get("format") if isinstance(request.get("text"), dict) else None
    reasoning = request.get("reasoning") if isinstance(request.get("reasoning"), dict) else None
    out: dict[str, Any] = {
        "id": id, "object": "response", "created_at": created_at, "model": model, "status": status,
        "output": output, "usage": usage, "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": request.get("instructions"), "metadata": request.get("metadata") or {},
        "max_output_tokens": request.get("max_output_tokens"),
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")} if reasoning else None,
        "temperature": request.get("temperature"), "top_p": request.get("top_p"),
        "text": {"format": text_format or {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto", "tools": request.get("tools") or [],
        "truncation": "disabled",
    }
    user = request.get("safety_identifier") or request.get("user")
    if isinstance(user, str):
        out["user" if "user" in request else "safety_identifier"] = user
    if router is not None:
        out["router"] = router
    return out


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [_text_part(text)]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def from_chat_response(chat_response: dict[str, Any], *, request: dict[str, Any], model: str,
                       id: str | None = None, created_at: float | None = None,
                       router: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Chat Completions answer as a ``Response`` (``request``: the Responses request, echoed), with
    the ``router`` object (the argument, else the answer's own ``router`` field)."""
    choices = chat_response.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    incomplete = _INCOMPLETE.get(choice.get("finish_reason") or "")
    rid = id or response_id()
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning_item(_item_id("rs", rid, len(output)), reasoning))
    text = _text(message.get("content"))
    if text:
        output.append(_message_item(_item_id("msg", rid, len(output)), text,
                                    "incomplete" if incomplete else "completed"))
    calls = message.get("tool_calls") or ()
    kinds = responses_tools.kinds(request) if calls else {}
    for call in calls:
        function = call.get("function") or {}
        item_id = _item_id("fc", rid, len(output))
        name = function.get("name", "")
        output.append(responses_tools.call_item(kinds.get(name, "function"), item_id,
                                                call.get("id") or "call_" + item_id[3:], name,
                                                function.get("arguments") or "", "completed"))
    return response_object(
        request=request, model=model, id=rid,
        created_at=created_at if created_at is not None else time.time(),
        status="incomplete" if incomplete else "completed", output=output,
        usage=_usage(chat_response.get("usage")), incomplete_reason=incomplete,
        router=router if router is not None else chat_response.get("router"))


class ResponsesStreamRenderer:
    """Chat stream chunks in, Responses API SSE bytes out, numbered by ``sequence_number``.

    ``start()`` once, ``feed(chunk)`` per chat chunk, then ``finish()`` — or ``fail()`` when the
    stream breaks after the 200. One output item is open at a time; ``response`` is the final
    ``Response`` (for the store) once the stream has ended.
    """

    def __init__(self, *, request: dict[str, Any], model: str, id: str | None = None,
                 created_at: float | None = None) -> None:
        self.request = request
        self.model = model
        self.id = id or response_id()
        self.created_at = created_at if created_at is not None else time.time()
        self.response: dict[str, Any] | None = None
        self._seq = 0
        self._output: list[dict[str, Any]] = []  # finished items
        self._open: str | None = None  # "reasoning" | "message" | "function_call"
        self._item_id = ""
        self._text: list[str] = []
        self._call: tuple[str, str] = ("", "")  # (call_id, name) of the open function call
        self._kinds: dict[str, str] | None = None  # tool name → custom / local_shell (responses_tools.kinds)
        self._call_kind = "function"  # custom and local_shell calls are sent whole when they close
        self._calls: set[int] = set()  # chat tool-call indices already opened
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._router: Any = None
        self._started = False

    # --- events ---
    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse.event(kind, payload)

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(request=self.request, model=self.model, id=self.id, created_at=self.created_at,
                               status=status, output=list(self._output), **extra)

    def start(self) -> bytes:
        self._started = True
        _rendering.set(self)  # for ``drain_error_event``: the request's task is this stream's
        snapshot = self._snapshot("in_progress")
        return (self._event("response.created", response=snapshot)
                + self._event("response.in_progress", response=snapshot))

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = [] if self._started else [self.start()]
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        if "router" in chunk:
            self._router = chunk["router"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out.append(self._to("reasoning"))
                self._text.append(reasoning)
                out.append(self._event("response.reasoning_summary_text.delta", item_id=self._item_id,
                                       output_index=len(self._output), summary_index=0, delta=reasoning))
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._to("message"))
                self._text.append(text)
                out.append(self._event("response.output_text.delta", item_id=self._item_id,
                                       output_index=len(self._output), content_index=0, delta=text, logprobs=[]))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_call(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def finish(self, *, usage: dict[str, Any] | None = None, router: dict[str, Any] | None = None) -> bytes:
        """Close the open item, then ``response.completed`` (or ``response.incomplete``).

        ``usage`` (OpenAI's chat usage object) and ``router`` are for a pipeline that collects them
        apart from the chunks; either may also have come on a chunk.
        """
        if self.response is not None:
            return b""
        if usage is not None:
            self._usage = _usage(usage)
        if router is not None:
            self._router = router
        out = [] if self._started else [self.start()]
        out.append(self._close())
        incomplete = _INCOMPLETE.get(self._finish or "")
        self.response = self._snapshot("incomplete" if incomplete else "completed", usage=self._usage,
                                       incomplete_reason=incomplete, router=self._router)
        out.append(self._event("response.incomplete" if incomplete else "response.completed",
                               response=self.response))
        return b"".join(out)

    def fail(self, message: str, *, code: str = "server_error") -> bytes:
        """``response.failed`` for a failure after the 200 (``code``: server_error or rate_limit_exceeded)."""
        if self.response is not None:
            return b""
        out = b"" if self._started else self.start()
        self.response = self._snapshot("failed", usage=self._usage, error={"code": code, "message": message},
                                       router=self._router)
        return out + self._event("response.failed", response=self.response)

    def error_event(self, message: str, *, code: str | None = None, param: str | None = None) -> bytes:
        """The bare ``error`` event, for clients that listen for it."""
        return self._event("error", code=code, message=message, param=param)

    # --- items ---
    def _to(self, kind: str, *, new: bool = False) -> bytes:
        if self._open == kind and not new:
            return b""
        out = self._close()
        self._open, self._text = kind, []
        index = len(self._output)
        if kind == "reasoning":
            self._item_id = _item_id("rs", self.id, index)
            item: dict[str, Any] = {"id": self._item_id, "type": "reasoning", "summary": []}
            return (out + self._event("response.output_item.added", output_index=index, item=item)
                    + self._event("response.reasoning_summary_part.added", item_id=self._item_id,
                                  output_index=index, summary_index=0, part={"type": "summary_text", "text": ""}))
        if kind == "message":
            self._item_id = _item_id("msg", self.id, index)
            item = {"id": self._item_id, "type": "message", "role": "assistant", "status": "in_progress",
                    "content": []}
            return (out + self._event("response.output_item.added", output_index=index, item=item)
                    + self._event("response.content_part.added", item_id=self._item_id, output_index=index,
                                  content_index=0, part=_text_part("")))
        self._item_id = _item_id("fc", self.id, index)
        call_id, name = self._call
        if self._call_kind != "function":
            return out  # announced when it closes: its item is only whole then (``_close_call``)
        return out + self._event("response.output_item.added", output_index=index,
                                 item=_call_item(self._item_id, call_id, name, "", "in_progress"))

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        kind, text, index, item_id = self._open, "".join(self._text), len(self._output), self._item_id
        self._open = None
        if kind == "reasoning":
            item = _reasoning_item(item_id, text)
            out = (self._event("response.reasoning_summary_text.done", item_id=item_id, output_index=index,
                               summary_index=0, text=text)
                   + self._event("response.reasoning_summary_part.done", item_id=item_id, output_index=index,
                                 summary_index=0, part={"type": "summary_text", "text": text}))
        elif kind == "message":
            item = _message_item(item_id, text, "incomplete" if _INCOMPLETE.get(self._finish or "") else "completed")
            out = (self._event("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
                               text=text, logprobs=[])
                   + self._event("response.content_part.done", item_id=item_id, output_index=index,
                                 content_index=0, part=_text_part(text)))
        elif self._call_kind != "function":
            return self._close_call(item_id, index, text)
        else:
            call_id, name = self._call
            item = _call_item(item_id, call_id, name, text, "completed")
            out = self._event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                              arguments=text)
        self._output.append(item)
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def _close_call(self, item_id: str, index: int, arguments: str) -> bytes:
        """A custom or local_shell call, whole: added, (a custom tool's input,) done."""
        call_id, name = self._call
        item = responses_tools.call_item(self._call_kind, item_id, call_id, name, arguments, "completed")
        custom = item["type"] == "custom_tool_call"
        opened = {**item, "input": ""} if custom else {**item, "status": "in_progress"}
        out = [self._event("response.output_item.added", output_index=index, item=opened)]  # numbered in order
        if custom:
            out.append(self._event("response.custom_tool_call_input.delta", item_id=item_id, output_index=index,
                                   delta=item["input"]))
            out.append(self._event("response.custom_tool_call_input.done", item_id=item_id, output_index=index,
                                   input=item["input"]))
        self._output.append(item)
        out.append(self._event("response.output_item.done", output_index=index, item=item))
        return b"".join(out)

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        chat_index = call.get("index", 0)
        function = call.get("function") or {}
        out = b""
        if chat_index not in self._calls:  # the first delta of a tool call names it
            self._calls.add(chat_index)
            out += self._close()  # before naming the new call: the open item may be the previous call
            self._call = (call.get("id") or f"call_{self.id.removeprefix('resp_')}_{len(self._output)}",
                          function.get("name") or "")
            if self._kinds is None:
                self._kinds = responses_tools.kinds(self.request)
            self._call_kind = self._kinds.get(self._call[1], "function")
            out += self._to("function_call", new=True)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and self._open == "function_call":
            self._text.append(arguments)
            if self._call_kind == "function":
                out += self._event("response.function_call_arguments.delta", item_id=self._item_id,
                                   output_index=len(self._output), delta=arguments)
        return out
