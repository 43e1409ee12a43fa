"""The floor: the least an OpenAI-compatible relay can do — accept a request, send it upstream on a
pooled aiohttp session, pass the answer (JSON or SSE) back byte for byte. No parsing, no routing.

    python benchmarks/floor_relay.py UPSTREAM_BASE_URL PORT
"""

import sys

import aiohttp
from aiohttp import web

UPSTREAM, PORT = sys.argv[1].rstrip("/"), int(sys.argv[2])


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
    yield
    await app["session"].close()


async def relay(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    async with request.app["session"].post(f"{UPSTREAM}/chat/completions", data=body,
                                           headers={"content-type": "application/json"}) as up:
        out = web.StreamResponse(status=up.status, headers={"content-type": up.headers["content-type"]})
        await out.prepare(request)
        async for data in up.content.iter_any():
            await out.write(data)
        await out.write_eof()
        return out


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


app = web.Application()
app.cleanup_ctx.append(session_ctx)
app.add_routes([web.post("/v1/chat/completions", relay), web.get("/readyz", healthz)])
web.run_app(app, host="127.0.0.1", port=PORT, print=None, access_log=None)
