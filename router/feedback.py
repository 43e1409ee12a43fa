"""Feedback on answers: ``POST /v1/feedback`` validated, matched to a recent answer, recorded.

``{"request_id": "rtr-…", "score": 0.0–1.0}`` or ``{"request_id", "thumbs": "up"|"down"}`` (up = 1,
down = 0), with an optional ``task_type`` (the client's correction of the label) and ``comment``.
Only ids the gateway answered within the retention window are accepted (404 ``request_not_found``
otherwise); the window is bounded in time and in count, so memory stays bounded. Feedback is
idempotent per request id: each one is logged, and readers keep the last one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router import errors, taxonomy

MAX_COMMENT_CHARS = 2_000
THUMBS = {"up": 1.0, "down": 0.0}


class RequestNotFound(errors.RouterError):
    status = 404
    type = "invalid_request_error"
    code = "request_not_found"


@dataclass(frozen=True, slots=True)
class Answered:
    route: str
    task_type: str
    at: float


class AnsweredRequests:
    """Request ids answered recently: at most ``max_ids``, none older than ``retention_s``.

    Two generations of plain dicts: ids go into the current one; when it holds ``max_ids / 2`` it
    becomes the previous one (the one before is dropped). An insert is one dict store — this runs on
    the request thread — and memory stays bounded without a per-entry linked list.
    """

    def __init__(self, *, retention_s: float = 7 * 86_400, max_ids: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retention_s = retention_s
        self.max_ids = max_ids
        self._clock = clock
        self._half = max(1, max_ids // 2)
        self._current: dict[str, tuple[str, str, float]] = {}
        self._previous: dict[str, tuple[str, str, float]] = {}

    def remember(self, request_id: str, route: str, task_type: str) -> None:
        current = self._current
        current[request_id] = (route, task_type, self._clock())
        if len(current) >= self._half:
            self._previous, self._current = current, {}

    def get(self, request_id: str) -> Answered | None:
        found = self._current.get(request_id) or self._previous.get(request_id)
        if found is None or self._clock() - found[2] > self.retention_s:
            return None
        return Answered(*found)

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)


@dataclass(frozen=True, slots=True)
class Feedback:
    request_id: str
    score: float
    thumbs: str | None
    task_type: str | None
    comment: str | None


def parse_feedback(body: Any) -> Feedback:
    """Validate a feedback body; every problem is a 400 naming the field and the fix."""
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The request body must be a JSON object with 'request_id' and 'score' "
                                    "(0.0-1.0) or 'thumbs' ('up'|'down').")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise errors.InvalidRequest("'request_id' is required: the x-router-request-id of the answer (rtr-…).",
                                    param="request_id")
    score, thumbs = body.get("score"), body.get("thumbs")
    if (score is None) == (thumbs is None):
        raise errors.InvalidRequest("Give exactly one of 'score' (0.0-1.0) and 'thumbs' ('up'|'down').",
                                    param="score")
    if thumbs is not None:
        if thumbs not in THUMBS:
            raise errors.InvalidRequest(f"'thumbs' must be 'up' or 'down', got {thumbs!r}.", param="thumbs")
        value = THUMBS[thumbs]
    else:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) \
                or not 0.0 <= score <= 1.0:
            raise errors.InvalidRequest(f"'score' must be a number from 0.0 to 1.0, got {score!r}.", param="score")
        value = float(score)
    task_type = body.get("task_type")
    if task_type is not None and task_type not in taxonomy.TASK_TYPES:
        raise errors.InvalidRequest(f"'task_type' must be one of {', '.join(taxonomy.TASK_TYPES)}, "
                                    f"got {task_type!r}.", param="task_type")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise errors.InvalidRequest("'comment' must be a string.", param="comment")
    return Feedback(request_id, value, thumbs, task_type, comment[:MAX_COMMENT_CHARS] if comment else None)
