"""The command line as a user runs it: `serve` with no backend configured (what `make run` does),
`check-policy` and `route`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import REPO

# A clean environment: no provider keys from the developer's shell leak into these runs.
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("KIMI_", "OPENAI_", "ANTHROPIC_", "MOONSHOT_", "ROUTER_", "OTEL_"))}
ENV["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO, input=stdin, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_without_backends_starts_the_demo_upstreams() -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--port", str(port)], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        answer = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Hi there!"}])
        assert answer.choices[0].message.content
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="auto", stream=True, messages=[{"role": "user", "content": "Hi there!"}]) if c.choices)
        assert streamed
        status = httpx.get(f"http://127.0.0.1:{port}/v1/router/status").json()
        assert status["demo"] is True
        # Live per-route latency and throughput are recorded for the demo's routes (issue 11, item 11).
        observed = {route: stat for backend in status["backends"].values()
                    for route, stat in backend["routes"].items() if stat["samples"] > 0}
        assert observed, status["backends"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "demo upstreams" in out
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it so the exit status tells the signal.
    assert proc.returncode in (0, -15), out
    assert "Traceback" not in out


def test_check_policy_accepts_the_packaged_policy() -> None:
    result = run_cli("check-policy", "policies/default.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "disabled here" in result.stdout


def test_check_policy_lists_every_problem_with_path_and_fix(tmp_path: Path) -> None:
    policy = (REPO / "policies" / "default.yaml").read_text()
    broken = policy.replace("tasks:\n  simple:       {candidates: [kimi:instant,",
                            "tasks:\n  simple:       {candidates: [kimi2:instant,")
    broken = broken.replace("objective: cheapest_meeting_quality", "objective: cheapest")
    broken = broken.replace("    context_window: 262144", "    context_windw: 262144")
    assert broken != policy
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    result = run_cli("check-policy", str(path))
    assert result.returncode == 1
    assert "backends.kimi.context_windw: unknown key" in result.stderr
    assert "objective:" in result.stderr and "cheapest_meeting_quality" in result.stderr
    path.write_text(broken.replace("    context_windw: 262144", "    context_window: 262144")
                    .replace("objective: cheapest", "objective: fastest"))
    result = run_cli("check-policy", str(path))
    assert "tasks.simple.candidates[0]: route 'kimi2:instant' names backend 'kimi2', which is not defined" \
        in result.stderr


@pytest.mark.parametrize("text", ["- just a list", "backends: {}\ntasks: {}", ": : :"])
def test_check_policy_rejects_garbage(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = run_cli("check-policy", str(path))
    assert result.returncode == 1 and "problem" in result.stderr and "Traceback" not in result.stderr


def test_route_prints_a_table_and_json() -> None:
    result = run_cli("route", "--latency-budget", "60000", "Write a short poem about the sea")
    assert result.returncode == 0, result.stderr
    assert "CHOSEN" in result.stdout and "kimi:instant" in result.stdout and "fallbacks" in result.stdout
    result = run_cli("route", "--json", "--max-cost", "0.0000001", "What is 2+2?")
    assert result.returncode == 3
    decision = json.loads(result.stdout)
    assert decision["feasible"] is False
    assert all("cost" in c["rejected_because"] for c in decision["candidates"])


def test_classify_round_trip_through_the_cli(tmp_path: Path) -> None:
    lines = [
        {"text": "Write a haiku about the first snow", "id": 1},
        {"messages": [{"role": "user", "content": "Fix this: TypeError: 'NoneType' object is not subscriptable"}],
         "id": 2},
        {"text": "What year did the Berlin Wall fall?", "id": 3},
    ]
    stdin = "\n".join(json.dumps(line) for line in lines) + "\n"
    result = run_cli("classify", stdin=stdin)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3], "other fields are copied through, order kept"
    assert [r["task_type"] for r in rows] == ["creative", "coding", "simple"]
    for row in rows:
        assert 0 < row["confidence"] <= 1 and abs(sum(row["probabilities"].values()) - 1) < 1e-6
    out = tmp_path / "out.jsonl"
    source = tmp_path / "in.jsonl"
    source.write_text(stdin + "{not json\n")
    result = run_cli("classify", "--input", str(source), "--output", str(out))
    assert result.returncode != 0 and "line 4" in result.stderr
