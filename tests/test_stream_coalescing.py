"""Frame coalescing on the stream path (router/sse.py DataLines, router/pipeline/streams.py).

A burst of frames the upstream sent at once leaves the gateway in few writes; a frame whose
successor is still on the network leaves at once — checked without timing: the upstream holds the
rest of its stream until the client has seen the first token, so a gateway that held that token
back would never get the rest (the upstream gives up after a fail-safe and the test fails).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from router.sse import DataLines, LineTooLong
from tests.conftest import Gateway, default_policy, start_gateway

HI = [{"role": "user", "content": "Hi"}]
WORDS = [f"w{i} " for i in range(30)]


def _frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-pace", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class PacedUpstream:
    """An OpenAI-compatible upstream whose stream is one burst (``mode = "burst"``: every frame in
    one write), gated (``"gated"``: the first token, then the rest once ``release`` is set) or
    broken (``"endless"``: the first token, then a line that never ends)."""

    def __init__(self) -> None:
        self.mode = "burst"
        self.release = threading.Event()
        self.gave_up = False  # a gated stream whose first token never reached the client
        self.peers: list[Any] = []  # the gateway's (address, port) per request: one per connection it used
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        head = _frame({"role": "assistant", "content": ""})
        rest = b"".join(_frame({"content": w}) for w in WORDS[1:]) + _frame({}, "stop") + b"data: [DONE]\n\n"
        if self.mode == "burst":
            await out.write(head + _frame({"content": WORDS[0]}) + rest)
        elif self.mode == "endless":  # a line past DataLines' 8 MiB cap, never ended
            await out.write(head + _frame({"content": WORDS[0]}) + b"data: " + b"x" * (9 << 20))
        else:
            await out.write(head + _frame({"content": WORDS[0]}))
            released = await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 20)
            self.gave_up = not released
            await out.write(rest)
        await out.write_eof()
        return out

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Claude's Messages stream (docs.anthropic.com/en/api/messages-streaming), all in one write."""
        await request.read()
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {
                "id": "msg_burst", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in WORDS),
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": len(WORDS)}},
            {"type": "message_stop"}]
        await out.write(b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode())
                                 for e in events))
        await out.write_eof()
        return out

    def start(self) -> PacedUpstream:
        ready: Future[None] = Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/messages", self._messages)
            runner = web.AppRunner(app, access_log=None)

            async def setup() -> None:
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                self.port = int(runner.addresses[0][1])

            loop.run_until_complete(setup())
            ready.set_result(None)
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        threading.Thread(target=run, name="paced-upstream", daemon=True).start()
        ready.result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture(scope="module")
def upstream() -> Iterator[PacedUpstream]:
    paced = PacedUpstream().start()
    yield paced
    paced.stop()


@pytest.fixture(scope="module")
def gw(upstream: PacedUpstream, classifier: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"KIMI_API_BASE": f"http://127.0.0.1:{upstream.port}/v1",
           "ANTHROPIC_API_BASE": f"http://127.0.0.1:{upstream.port}", "ANTHROPIC_API_KEY": "sk-test"}
    gateway = start_gateway(None, default_policy(), Path(tmp_path_factory.mktemp("coalesce")),  # type: ignore[arg-type]
                            classifier=classifier, env=env)
    yield gateway
    gateway.stop()


def test_a_burst_leaves_the_gateway_in_few_writes_and_whole(gw: Gateway, upstream: PacedUpstream) -> None:
    upstream.mode = "burst"
    stream = gw.client().chat.completions.create(model="kimi:instant", messages=HI, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(WORDS)
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["router"]["route"] == "kimi:instant"

    async def http_chunks() -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, session.post(
                f"{gw.base_url}/chat/completions", headers={"authorization": "Bearer test-key"},
                json={"model": "kimi:instant", "messages": HI, "stream": True}) as resp:
            count, body = 0, b""
            async for data, end_of_chunk in resp.content.iter_chunks():
                body += data
                count += end_of_chunk
            return count, body

    count, body = asyncio.run(http_chunks())
    frames = body.count(b"data: ")
    assert frames == len(WORDS) + 3  # role, words, finish (+router), [DONE]
    # Uncoalesced, each frame was its own HTTP chunk (and the end one more); the burst sat in the
    # gateway's socket buffer at once, so it leaves in a handful.
    assert count <= 4, f"{frames} frames in {count} HTTP chunks"


def test_a_native_claude_burst_leaves_the_gateway_in_few_writes_and_whole(gw: Gateway) -> None:
    async def http_chunks() -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session, session.post(
                f"{gw.base_url}/messages", headers={"authorization": "Bearer test-key"},
                json={"model": "claude:default", "max_tokens": 100, "messages": HI, "stream": True}) as resp:
            assert resp.status == 200
            count, body = 0, b""
            async for data, end_of_chunk in resp.content.iter_chunks():
                body += data
                count += end_of_chunk
            return count, body

    count, body = asyncio.run(http_chunks())
    texts = [json.loads(line[6:])["delta"].get("text", "") for line in body.split(b"\n")
             if line.startswith(b"data: ") and b'"content_block_delta"' in line]
    assert "".join(texts) == "".join(WORDS) and body.count(b"event: message_stop") == 1
    # Claude's events pass through as they came (/v1/messages -> claude:default, native); a burst
    # of 35 events used to leave in 35 writes.
    assert count <= 4, f"{body.count(b'event: ')} events in {count} HTTP chunks"


def test_streams_one_after_another_reuse_one_upstream_connection(gw: Gateway, upstream: PacedUpstream) -> None:
    upstream.mode = "burst"
    upstream.peers.clear()
    client = gw.client()
    pool = gw.services.clients.relay.pool()

    def settled() -> None:
        # After [DONE] the relay lets the HTTP message end and pools the connection
        # (http1.Response.release_at_end). The chunked terminator is the upstream's separate write, so
        # it can land after the client's next request: wait (bounded) until no connection is in use.
        # Not "one idle": the module's earlier streams may have left more than one in the pool when
        # their own terminators were late, and a request takes the most recently used of them.
        deadline = time.monotonic() + 5
        while pool.idle_connections != pool.open_connections and time.monotonic() < deadline:
            time.sleep(0.005)
        assert pool.idle_connections == pool.open_connections, "a stream's connection never went back to the pool"

    settled()
    for _ in range(4):
        text = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model="kimi:instant", messages=HI, stream=True) if c.choices)
        assert text == "".join(WORDS)
        settled()
    assert len(upstream.peers) == 4 and len(set(upstream.peers)) == 1, upstream.peers


def test_a_lone_token_is_not_held_for_its_successor(gw: Gateway, upstream: PacedUpstream) -> None:
    upstream.mode = "gated"
    upstream.release.clear()
    client = gw.client(timeout=60)
    seen = ""
    with client.chat.completions.create(model="kimi:instant", messages=HI, stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += chunk.choices[0].delta.content
                upstream.release.set()  # the first token arrived while the rest was still held upstream
    assert not upstream.gave_up, "the first token reached the client only after the upstream gave up waiting"
    assert seen == "".join(WORDS)


# --- DataLines on its own: bytes split anywhere ---------------------------------------------------
async def _drain(lines: DataLines) -> list[bytes]:
    out = []
    while (payload := await lines.next()) is not None:
        out.append(payload)
    return out


STREAM = b": keep-alive\n\nevent: x\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":2}\n\ndata: [DONE]\n\n"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_data_lines_are_the_same_however_the_bytes_are_split(size: int) -> None:
    lines = DataLines()
    for i in range(0, len(STREAM), size):
        lines.feed(STREAM[i:i + size])
    lines.feed_eof()
    assert asyncio.run(_drain(lines)) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_ready_only_when_a_whole_data_line_is_in_memory() -> None:
    lines = DataLines()
    assert not lines.ready()  # nothing arrived
    lines.feed(b"data: {\"a\":1}\n\nda")
    assert lines.ready()
    assert asyncio.run(lines.next()) == b'{"a":1}'
    assert not lines.ready()  # "da" is not a line
    lines.feed(b"ta: {\"b\"")
    assert not lines.ready()  # 'data: {"b"' is not a whole line either
    lines.feed(b":2}\n\n")
    assert lines.ready()
    assert asyncio.run(lines.next()) == b'{"b":2}'
    lines.feed_eof()
    assert asyncio.run(lines.next()) is None


def test_a_last_line_without_its_newline_still_counts_and_an_endless_one_is_refused() -> None:
    lines = DataLines()
    lines.feed(b"data: [DONE]")
    lines.feed_eof()
    assert asyncio.run(_drain(lines)) == [b"[DONE]"]
    lines = DataLines(max_line=16)
    assert lines.feed(b"data: {}\n") is True
    assert lines.feed(b"data: " + b"x" * 32) is False  # refused: the connection stops reading
    assert asyncio.run(lines.next()) == b"{}"  # what came before the broken line is still delivered
    with pytest.raises(LineTooLong):
        asyncio.run(lines.next())


def test_a_full_buffer_pauses_the_producer_until_the_consumer_took_half() -> None:
    resumed: list[int] = []
    lines = DataLines(high_water=100)
    lines.bind(lambda: resumed.append(lines._buffered))
    frame = b"data: " + b"y" * 20 + b"\n\n"
    accepted = [lines.feed(frame) for _ in range(5)]
    assert accepted == [True, True, True, True, False]  # 5 x 20 payload bytes reach the high water
    taken = [asyncio.run(lines.next()) for _ in range(3)]
    assert taken == [b"y" * 20] * 3 and resumed == [40]  # resumed once, at <= half of the high water


def test_a_failure_is_raised_after_the_payloads_that_came_before_it() -> None:
    lines = DataLines()
    lines.feed(b"data: 1\n\ndata: 2\n\n")
    lines.feed_error(TimeoutError("the upstream stopped sending"))
    assert asyncio.run(lines.next()) == b"1"
    assert asyncio.run(lines.next()) == b"2"
    with pytest.raises(TimeoutError):
        asyncio.run(lines.next())


def test_an_endless_line_from_the_upstream_ends_the_stream_with_an_error_event(
        gw: Gateway, upstream: PacedUpstream) -> None:
    upstream.mode = "endless"
    seen = ""
    with pytest.raises(openai.APIError) as caught:  # the SDK raises on the error event
        for chunk in gw.client().chat.completions.create(model="kimi:instant", messages=HI, stream=True):
            if chunk.choices:
                seen += chunk.choices[0].delta.content or ""
    assert seen == WORDS[0]
    assert "mid-stream" in caught.value.message
