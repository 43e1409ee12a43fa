"""`python -m router.demo.mcp_cli`: the demo MCP server (search + calculate) in this process.

Over stdio by default (an MCP client starts it as a subprocess); with ``--http`` over streamable HTTP
on loopback, printing its URL as the first stdout line (for benchmarks), until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import socket

import uvicorn

from router.demo.mcp_server import TOOLS, build_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m router.demo.mcp_cli", description=__doc__.splitlines()[0])
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--port", type=int, default=0, help="with --http; 0 picks a free port")
    parser.add_argument("--tool", action="append", choices=TOOLS, help="offer only this tool (repeatable)")
    args = parser.parse_args(argv)
    server = build_server(tools=tuple(args.tool or TOOLS))
    if not args.http:
        server.run("stdio")
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")).run(sockets=[sock])


if __name__ == "__main__":
    main()
