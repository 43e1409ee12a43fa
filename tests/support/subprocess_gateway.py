"""A gateway in its own process (``model-router serve``), for what a thread cannot show: descriptor
limits, SIGTERM, connection floods. Always on loopback, always stopped."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    def __init__(self, *, env: dict[str, str], args: list[str] | None = None, nofile: int | None = None,
                 log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        preexec: Callable[[], None] | None = None
        if nofile is not None:
            def preexec() -> None:
                _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
        self._log = open(log_path or os.devnull, "wb")
        full_env = {"PATH": os.environ.get("PATH", ""), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "ROUTER_LOG_LEVEL": "warning", "ROUTER_POLICY_RELOAD_INTERVAL_S": "0", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             *(args or [])], cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=preexec)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the gateway process did not start")
            time.sleep(0.1)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
