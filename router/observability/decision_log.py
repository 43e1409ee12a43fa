"""A JSONL stream written off the request thread: bounded queue, one writer thread, size rotation.

The request thread only appends an item to a queue (well under a microsecond); the writer thread
renders items to lines (``render``), writes them in batches and rotates the file at ``max_bytes``,
keeping ``files`` files (``decisions.jsonl``, ``decisions.jsonl.1``, …). ``-`` writes to stdout for
a log shipper. Nothing here can fail a request: a full queue drops the item, a full disk or an
unwritable path drops the batch; both are counted (``on_drop``) and logged at most once a minute.
The queue holds at most ``queue_size`` items (each a finished request, body included, until it is
written), which bounds the memory a stalled disk can take.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("router.decision_log")

WARN_EVERY_S = 60.0
BATCH_WAIT_S = 0.02
IDLE_BLOCK_S = 1.0
_STOP = object()


class DecisionLog:
    def __init__(self, target: str | None, *, render: Callable[[Any], bytes | None],
                 max_bytes: int = 100 * 1024 * 1024, files: int = 10, queue_size: int = 4_096,
                 on_drop: Callable[[str, int], None] | None = None,
                 on_written: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``target``: a file path, ``-`` (stdout) or None (render only: items still reach ``render``,
        for the shadow policy, but nothing is written)."""
        self.target = target
        self._render = render
        self._max_bytes = max(1, max_bytes)
        self._files = max(1, files)
        self._queue_size = queue_size
        self._on_drop = on_drop or (lambda reason, n: None)
        self._on_written = on_written or (lambda n: None)
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stream: IO[bytes] | None = None
        self._size = 0
        self.dropped: dict[str, int] = {}
        self._warned_at = -WARN_EVERY_S
        self._warned_drops = 0
        self._thread = threading.Thread(target=self._drain, name="decision-log", daemon=True)
        self._thread.start()

    # --- request thread -----------------------------------------------------------------------
    def submit(self, item: Any) -> bool:
        """Queue ``item`` for the writer; False (and counted) when the queue is full."""
        # SimpleQueue is C and lock-free for one producer; qsize() is O(1). The bound is a soft one.
        if self._queue.qsize() >= self._queue_size:
            self._drop("queue_full", 1)
            return False
        self._queue.put(item)
        return True

    # --- writer thread ------------------------------------------------------------------------
    def _drop(self, reason: str, n: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n
        with contextlib.suppress(Exception):
            self._on_drop(reason, n)

    def _warn_if_dropping(self, why: str = "") -> None:
        total = sum(self.dropped.values())
        now = self._clock()
        if total > self._warned_drops and now - self._warned_at >= WARN_EVERY_S:
            log.warning("decision log %s: %d record(s) dropped so far (%s)%s", self.target, total,
                        ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())), why and f"; last error: {why}")
            self._warned_at, self._warned_drops = now, total

    def _next_batch(self) -> list[Any]:
        """Wait for items, then take everything queued (at most 4,096).

        While traffic flows the writer polls every ``BATCH_WAIT_S`` instead of blocking on the queue:
        a ``put`` onto a queue someone is blocked on wakes that thread (a futex syscall plus a GIL
        hand-off, ~10-40 µs on the request thread that happens to submit first). Only after
        ``IDLE_BLOCK_S`` without items does it block, so an idle gateway does not wake 50 times a
        second; the first request after an idle spell pays the wake-up.
        """
        idle_since = self._clock()
        batch: list[Any] = []
        while True:
            time.sleep(BATCH_WAIT_S)  # let a batch gather: one wake-up per batch, not per request
            with contextlib.suppress(queue.Empty):
                while len(batch) < 4096:
                    batch.append(self._queue.get_nowait())
            if batch:
                return batch
            if self._clock() - idle_since >= IDLE_BLOCK_S:
                try:
                    batch.append(self._queue.get(timeout=1.0))  # gathered further on the next turn
                except queue.Empty:
                    self._warn_if_dropping()

    def _drain(self) -> None:
        stop = False
        while not stop:
            batch = self._next_batch()
            lines: list[bytes] = []
            markers: list[_Marker] = []
            for item in batch:
                if item is _STOP:
                    stop = True
                    continue
                if isinstance(item, _Marker):
                    markers.append(item)
                    continue
                try:
                    line = self._render(item)
                except Exception:  # a rendering bug loses that record, never the writer
                    log.exception("decision log: could not render a record")
                    self._drop("render_error", 1)
                    continue
                if line is not None:
                    lines.append(line)
            if lines and self.target is not None:
                self._write(lines)
            self._warn_if_dropping()
            for marker in markers:
                marker.done.set()
        self._close_stream()

    def _write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        try:
            stream = self._open()
            if self.target != "-" and self._size and self._size + len(data) > self._max_bytes:
                self._rotate()
                stream = self._open()
            stream.write(data)
            stream.flush()
            self._size += len(data)
            self._on_written(len(lines))
        except (OSError, ValueError) as exc:  # full disk, unwritable path, closed stdout
            self._drop("write_error", len(lines))
            self._close_stream()
            self._warn_if_dropping(str(exc))

    def _open(self) -> IO[bytes]:
        if self._stream is None:
            if self.target == "-":
                self._stream = sys.stdout.buffer
            else:
                assert self.target is not None
                path = Path(self.target)
                self._stream = open(path, "ab")
                self._size = path.stat().st_size
        return self._stream

    def _rotate(self) -> None:
        """decisions.jsonl -> .1 -> .2 …; the oldest beyond ``files`` is removed."""
        self._close_stream()
        base = str(self.target)
        oldest = f"{base}.{self._files - 1}"
        if self._files == 1:
            with contextlib.suppress(FileNotFoundError):
                os.remove(base)
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(oldest)
        for i in range(self._files - 2, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{base}.{i}", f"{base}.{i + 1}")
        os.replace(base, f"{base}.1")

    def _close_stream(self) -> None:
        if self._stream is not None and self._stream is not getattr(sys.stdout, "buffer", None):
            with contextlib.suppress(OSError, ValueError):
                self._stream.close()
        self._stream = None
        self._size = 0

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far has been handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.005)
        # The last batch may still be rendering/writing: a marker item that renders to nothing.
        done = threading.Event()
        self._queue.put(_Marker(done))
        done.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)


class _Marker:
    __slots__ = ("done",)

    def __init__(self, done: threading.Event) -> None:
        self.done = done
