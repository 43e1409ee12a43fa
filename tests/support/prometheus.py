"""A real Prometheus server for tests, plus the helpers that feed it dashboard queries.

    with start_prometheus(["127.0.0.1:8000"]) as prom:
        prom.wait_for_up()
        series = prom.query('sum(rate(router_requests_total[1m]))')

`start_prometheus` runs the `prometheus` binary (Debian: `apt-get install prometheus`) on 127.0.0.1 with
a throw-away config and TSDB; `stop()` always kills it. `panel_queries()` turns a Grafana dashboard into
plain PromQL by substituting Grafana's variables, so every panel can be run against that server.
`serve_metrics()` exposes a prometheus_client registry on loopback as a scrape target.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

Series = dict[str, Any]  # one element of Prometheus' `data.result`: {"metric": {...}, "value": [t, "v"]}

DEFAULT_JOB = "model-router"
INSTALL_HINT = {
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
    "promtool": "apt-get install -y --no-install-recommends prometheus  # ships promtool",
}


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error (the message carries its reason)."""


def find_binary(name: str) -> str:
    """Path of `prometheus` or `promtool`; skips the test when absent, fails instead when CI is set.

    `.ci/run` installs the Debian package, so in CI a missing binary is a broken setup, not a skip.
    Set PROMETHEUS_BIN_DIR to use binaries outside PATH.
    """
    directory = os.environ.get("PROMETHEUS_BIN_DIR")
    path = shutil.which(name, path=directory) if directory else shutil.which(name)
    if path:
        return path
    message = (f"`{name}` not found on PATH{f' or in {directory}' if directory else ''}; "
               f"install it with `{INSTALL_HINT.get(name, 'apt-get install prometheus')}` "
               "(.ci/run does this) or set PROMETHEUS_BIN_DIR")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _kill(process: subprocess.Popen[bytes], workdir: Path) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=5)
    shutil.rmtree(workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    """A running Prometheus on loopback. Use as a context manager, or call `stop()` yourself."""

    process: subprocess.Popen[bytes]
    url: str
    workdir: Path
    job: str = DEFAULT_JOB
    _log: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Safety net for a test that forgets `with`/stop(): kill this process (by its pid) when the
        # object is collected or the interpreter exits, so no Prometheus outlives the test run.
        weakref.finalize(self, _kill, self.process, self.workdir)

    # -- lifecycle

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and delete its config and TSDB."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        """Prometheus' own stderr/stdout so far (for failure messages)."""
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- HTTP API

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an API path; returns the decoded body whatever the HTTP status (errors carry JSON too)."""
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as err:  # 400/422/503 carry {"status": "error", "error": ...}
            body = json.load(err)
            body.setdefault("httpStatus", err.code)
        return body

    def query(self, expr: str) -> list[Series]:
        """Run an instant query now; returns `data.result` (a list of series, or a 1-element list
        `[{"metric": {}, "value": [...]}]` for a scalar). Raises PrometheusError on any API error."""
        body = self.api("/api/v1/query", query=expr)
        if body.get("status") != "success":
            raise PrometheusError(f"query failed ({body.get('errorType')}): {body.get('error')}\n  {expr}")
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Series] = data["result"]
        return result

    def wait_until(self, expr: str, *, timeout: float = 30,
                   predicate: Callable[[list[Series]], bool] = bool) -> list[Series]:
        """Poll `expr` until `predicate(result)` holds (default: at least one series)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout:.0f}s `{expr}` still returns {result!r}\n"
                                   f"targets: {self.targets()}")
            time.sleep(0.25)

    def wait_for_up(self, job: str | None = None, *, timeout: float = 30) -> None:
        """Wait until every target of `job` has been scraped successfully (`up == 1`)."""
        job = job or self.job

        def all_up(result: list[Series]) -> bool:
            return bool(result) and all(s["value"][1] == "1" for s in result)

        self.wait_until(f'up{{job="{job}"}}', timeout=timeout, predicate=all_up)

    def wait_for_samples(self, metric: str, samples: int = 2, *, window: str = "1m",
                         timeout: float = 30) -> None:
        """Wait until `metric` has `samples` points in `window`, so rate() over it returns a value."""
        self.wait_until(f"count_over_time({metric}[{window}]) >= {samples}", timeout=timeout)

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with health and last error (handy in assertion messages)."""
        body = self.api("/api/v1/targets")
        return [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError")}
                for t in body.get("data", {}).get("activeTargets", [])]


def start_prometheus(targets: list[str], scrape_interval: str = "1s", *, job: str = DEFAULT_JOB,
                     rule_files: list[Path] | None = None, metrics_path: str = "/metrics",
                     ready_timeout: float = 20) -> PrometheusServer:
    """Start Prometheus on 127.0.0.1 scraping `targets` ("host:port") as `job`; wait for /-/ready.

    `rule_files` are copied next to the config and evaluated every `scrape_interval`, so recording
    rules and alerts can be checked against live data too.
    """
    binary = find_binary("prometheus")
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
    rules = []
    for i, src in enumerate(rule_files or []):
        dst = workdir / f"rules-{i}-{Path(src).name}"
        shutil.copyfile(src, dst)
        rules.append(str(dst))
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                   "scrape_timeout": scrape_interval},
        "rule_files": rules,
        "scrape_configs": [{"job_name": job, "metrics_path": metrics_path,
                            "static_configs": [{"targets": list(targets)}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "data").mkdir()
    last_error = ""
    for _attempt in range(3):  # the free port can be taken between probing and binding: retry
        port = _free_port()
        log = (workdir / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={workdir / 'data'}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = PrometheusServer(process, f"http://127.0.0.1:{port}", workdir, job, log)
        if _wait_ready(server, ready_timeout):
            return server
        last_error = server.log()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
        log.close()
        if "address already in use" not in last_error:
            break
    shutil.rmtree(workdir, ignore_errors=True)
    raise PrometheusError(f"prometheus did not become ready:\n{last_error[-3000:]}")


def _wait_ready(server: PrometheusServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------- a scrape target for a registry


@contextmanager
def serve_metrics(registry: CollectorRegistry, *,
                  before_scrape: Callable[[], None] | None = None) -> Iterator[str]:
    """Serve `registry` at http://127.0.0.1:<port>/metrics; yields "127.0.0.1:<port>" (a target).

    `before_scrape` runs on every GET, e.g. to record more observations so rates are not zero.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            if before_scrape is not None:
                before_scrape()
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- Grafana dashboards → PromQL

# Grafana's built-in variables, with values that suit a test Prometheus scraping every second: the
# rate window must hold at least two samples, and the range covers everything scraped so far.
GRAFANA_BUILTINS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name}, ${name:format}, [[name]]
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def substitute_variables(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana variables in `expr`; an unknown variable raises KeyError naming it."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in variables:
            raise KeyError(f"variable ${name} in `{expr}` has no value (known: {sorted(variables)})")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Mapping[str, Any], *,
                  overrides: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """`(panel title, PromQL)` for every target with an `expr`, with Grafana variables substituted.

    Built-ins get GRAFANA_BUILTINS; a template variable gets its `allValue` (Grafana's "All"), else
    `.*` — dashboards here use multi-value variables only inside regex matchers (`route=~"$route"`).
    `overrides` (name → value) wins over both, e.g. `{"route": "kimi:instant"}`.
    """
    variables: dict[str, str] = dict(GRAFANA_BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") in ("query", "custom", "constant", "textbox", "interval"):
            variables[var["name"]] = var.get("allValue") or ".*"
    variables.update(overrides or {})
    queries = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append((panel.get("title", ""), substitute_variables(target["expr"], variables)))
    return queries
