"""A mock OpenAI-compatible upstream that answers instantly with a fixed, valid answer — fast enough
that neither the floor nor the gateway is limited by it. JSON, or SSE with CHUNKS content chunks each
written separately (as an engine streams tokens), then a usage chunk and [DONE].

    python benchmarks/canned_upstream.py PORT [CHUNKS]
"""

import sys
import time

import orjson
from aiohttp import web

PORT = int(sys.argv[1])
CHUNKS = int(sys.argv[2]) if len(sys.argv) > 2 else 16
MODEL = "moonshotai/Kimi-K2.5"
USAGE = {"prompt_tokens": 20, "completion_tokens": CHUNKS, "total_tokens": 20 + CHUNKS}
JSON_BODY = orjson.dumps({
    "id": "chatcmpl-canned", "object": "chat.completion", "created": int(time.time()), "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * CHUNKS},
                 "finish_reason": "stop", "logprobs": None}], "usage": USAGE})


def frame(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    chunk = {"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
             "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if usage:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


FRAMES = [frame({"role": "assistant", "content": ""}), *(frame({"content": "word "}) for _ in range(CHUNKS)),
          frame({}, "stop"), frame({}, usage=USAGE), b"data: [DONE]\n\n"]


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if not body.get("stream"):
        return web.Response(body=JSON_BODY, content_type="application/json")
    out = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await out.prepare(request)
    for data in FRAMES:
        await out.write(data)
    await out.write_eof()
    return out


async def models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


app = web.Application()
app.add_routes([web.post("/v1/chat/completions", chat), web.get("/v1/models", models)])
web.run_app(app, host="127.0.0.1", port=PORT, print=None, access_log=None)
