"""A real ``redis-server`` on loopback for tests (Debian: ``apt-get install redis-server``; .ci/run does it).

    with start_redis() as url:  # "redis://127.0.0.1:<free port>/0"
        ...

No persistence, no config file; the process is killed (by its pid) when the block ends. Without the
binary the test is skipped with the install hint, except under CI, where that is a broken setup.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

INSTALL_HINT = "apt-get install -y --no-install-recommends redis-server"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    message = f"`redis-server` not found on PATH; install it with `{INSTALL_HINT}` (.ci/run does this)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def start_redis() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # ready when it answers PING
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port} (exit code {process.poll()})")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(timeout=5)
