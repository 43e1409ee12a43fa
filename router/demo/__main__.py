"""`python -m router.demo --kind vllm --port 0`: one demo upstream in this process.

The first line on stdout is the server's base URL (what a client or litellm's `api_base` takes), so a
benchmark can start it as a subprocess and read where it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from router.demo.behavior import SERVER_KINDS, DemoBehavior
from router.demo.runner import base_url_for, start_server
from router.demo.server_state import DemoServerSpec, DemoServerState

_DEFAULTS = DemoBehavior()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m router.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=SERVER_KINDS, default="vllm")
    parser.add_argument("--name", default=None, help="server name (default: the kind)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default=None, help="served model name (default per kind)")
    parser.add_argument("--api-key", default=None, help="require this key (Bearer or x-api-key)")
    parser.add_argument("--ttft-ms", type=float, default=_DEFAULTS.ttft_ms)
    parser.add_argument("--tokens-per-s", type=float, default=_DEFAULTS.tokens_per_s)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--rate-limit-rate", type=float, default=0.0)
    parser.add_argument("--timeout-rate", type=float, default=0.0)
    parser.add_argument("--max-num-seqs", type=int, default=_DEFAULTS.max_num_seqs)
    parser.add_argument("--reasoning-field", choices=("reasoning_content", "reasoning"),
                        default="reasoning_content")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    behavior = DemoBehavior().merged({
        "ttft_ms": args.ttft_ms, "tokens_per_s": args.tokens_per_s, "error_rate": args.error_rate,
        "rate_limit_rate": args.rate_limit_rate, "timeout_rate": args.timeout_rate,
        "max_num_seqs": args.max_num_seqs, "reasoning_field": args.reasoning_field,
    })
    spec = DemoServerSpec(args.name or args.kind, args.kind, model=args.model, api_key=args.api_key,
                          behavior=behavior, host=args.host, port=args.port)
    runner, port = await start_server(DemoServerState(spec))
    print(base_url_for(spec, port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    try:
        asyncio.run(serve(parse_args(argv)))
    except ValueError as exc:
        print(f"router.demo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
