"""The access log's writer: every line once, in order, and many lines per write under a burst."""

from __future__ import annotations

import io
import threading
from typing import Any

import orjson
import yaml

from router.dispatch.upstream import Usage
from router.engine.live import LiveState
from router.exchange import Routed
from router.observability.access_log import AccessLog
from router.observability.metrics import RouterMetrics
from router.observability.tracing import Tracer
from router.pipeline import Pipeline
from router.policy.loader import load_policy_text
from tests.conftest import default_policy

ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def routed() -> Routed:
    """A real decision (the task type given, so no classifier is needed)."""
    loaded = load_policy_text(yaml.safe_dump(default_policy()), env=ENV)

    class Fixed:
        current = loaded

    pipeline = Pipeline(policies=Fixed(), classifier=None, live=LiveState(loaded.policy),  # type: ignore[arg-type]
                        dispatcher=None, metrics=RouterMetrics(), tracer=Tracer(None),  # type: ignore[arg-type]
                        access_log=None)  # type: ignore[arg-type]
    body: dict[str, Any] = {"model": "kimi:instant", "messages": [{"role": "user", "content": "hi"}]}
    return pipeline.prepare(body, {"x-router-task-type": "simple"})


def write(log: AccessLog, request: Routed, n: int) -> None:
    for i in range(n):
        log.write(request, route="kimi:instant", mode="instant", status="ok", usage=Usage(i, 1, 0), cost=0.0,
                  fallbacks=0, duration_s=0.001, ttft_s=None)


def test_a_burst_goes_out_in_a_few_writes_and_close_loses_nothing() -> None:
    stream = CountingStream()
    log = AccessLog(stream)
    request = routed()
    write(log, request, 300)
    log.close()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["tokens"]["input"] for line in lines] == list(range(300))  # all, once, in order
    assert {line["request_id"] for line in lines} == {request.request_id}
    # 300 lines written within one linger window: a handful of writes, not one per line.
    assert stream.writes <= 30, stream.writes


def test_lines_from_several_threads_each_arrive_once() -> None:
    stream = CountingStream()
    log = AccessLog(stream)
    request = routed()
    threads = [threading.Thread(target=write, args=(log, request, 200)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    counts = sorted(orjson.loads(line)["tokens"]["input"] for line in stream.getvalue().splitlines())
    assert counts == sorted(list(range(200)) * 4)


def test_a_line_written_while_the_writer_sleeps_is_not_stranded() -> None:
    """Lines arriving after the writer woke still reach the stream without close()."""
    stream = CountingStream()
    log = AccessLog(stream)
    request = routed()
    write(log, request, 1)
    done = threading.Event()
    for _ in range(100):  # ~2 s at most: the writer flushes within its linger (20 ms)
        if stream.getvalue().count("\n") == 1:
            break
        done.wait(0.02)
    write(log, request, 1)
    for _ in range(100):
        if stream.getvalue().count("\n") == 2:
            break
        done.wait(0.02)
    assert stream.getvalue().count("\n") == 2
    log.close()
