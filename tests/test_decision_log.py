"""The decision log's writer: rotation, stdout, bounded queue, failures that never reach a request."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import orjson
import pytest

from router.observability.decision_log import DecisionLog


def _line(i: int) -> bytes:
    return orjson.dumps({"event": "decision", "i": i, "pad": "x" * 80}) + b"\n"


def test_lines_are_written_in_order_and_rotated_by_size_keeping_n_files(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(str(path), render=_line, max_bytes=1000, files=3)
    for i in range(60):
        log.submit(i)
        if i % 5 == 4:
            log.flush()
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 1000
    newest = [orjson.loads(x)["i"] for x in path.read_bytes().splitlines()]
    older = [orjson.loads(x)["i"] for x in (tmp_path / "decisions.jsonl.1").read_bytes().splitlines()]
    assert newest[-1] == 59 and older[-1] == newest[0] - 1  # .1 holds the lines just before the current file


def test_dash_writes_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    log = DecisionLog("-", render=_line)
    log.submit(7)
    log.close()
    assert '"i":7' in capfd.readouterr().out


def test_unwritable_path_drops_counted_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    drops: list[tuple[str, int]] = []
    target = tmp_path / "no-such-dir" / "decisions.jsonl"
    log = DecisionLog(str(target), render=_line, on_drop=lambda r, n: drops.append((r, n)))
    with caplog.at_level(logging.WARNING, logger="router.decision_log"):
        for i in range(5):
            assert log.submit(i) is True  # the request thread never sees the failure
        log.flush()
    log.close()
    assert sum(n for r, n in drops if r == "write_error") == 5
    assert log.dropped["write_error"] == 5
    assert "dropped" in caplog.text


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to simulate a full disk")
def test_full_disk_drops_counted() -> None:
    log = DecisionLog("/dev/full", render=_line)
    for i in range(3):
        log.submit(i)
    log.flush()
    log.close()
    assert log.dropped.get("write_error", 0) == 3


def test_full_queue_drops_on_the_request_thread_without_blocking(tmp_path: Path) -> None:
    gate = threading.Event()

    def slow(item: int) -> bytes:
        gate.wait(5)  # the writer is stuck (a slow disk)
        return _line(item)

    log = DecisionLog(str(tmp_path / "d.jsonl"), render=slow, queue_size=10)
    accepted = sum(log.submit(i) for i in range(100))
    assert accepted <= 12 and log.dropped["queue_full"] == 100 - accepted
    gate.set()
    log.close()


def test_render_errors_lose_one_record_not_the_writer(tmp_path: Path) -> None:
    def render(item: int) -> bytes:
        if item == 1:
            raise ValueError("bug")
        return _line(item)

    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), render=render)
    for i in range(3):
        log.submit(i)
    log.close()
    assert [orjson.loads(x)["i"] for x in path.read_bytes().splitlines()] == [0, 2]
    assert log.dropped == {"render_error": 1}


def test_drop_warning_at_most_once_a_minute(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    log = DecisionLog(str(tmp_path / "missing" / "d.jsonl"), render=_line, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="router.decision_log"):
        log.submit(1)
        log.flush()
        log.submit(2)
        log.flush()
        now[0] += 61
        log.submit(3)
        log.flush()
    log.close()
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 2  # t=1000 and t=1061; the drop at t=1000 (second batch) was folded in
    assert "3 record(s)" in warnings[-1].getMessage()


def test_reopens_after_the_path_becomes_writable(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    log = DecisionLog(str(directory / "d.jsonl"), render=_line)
    log.submit(1)
    log.flush()
    os.mkdir(directory)
    log.submit(2)
    log.close()
    assert [orjson.loads(x)["i"] for x in (directory / "d.jsonl").read_bytes().splitlines()] == [2]
