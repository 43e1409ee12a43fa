"""``POST /v1/feedback``: a score or a thumb on an answer, by its ``x-router-request-id``."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from router import errors
from router.api.http import JSON, read_body
from router.feedback import RequestNotFound, parse_feedback
from router.services import Services
from router.tuning.record import feedback_record

router = APIRouter()
MAX_FEEDBACK_BYTES = 64 * 1024


@router.post("/v1/feedback")
async def post_feedback(request: Request) -> Response:
    services: Services = request.app.state.services
    services.auth.check(request.headers.get("authorization"))
    raw = await read_body(request, MAX_FEEDBACK_BYTES)
    if not raw.strip():
        raise errors.InvalidRequest("The request body is empty; send {\"request_id\": \"rtr-…\", \"score\": 0.0-1.0}.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    feedback = parse_feedback(body)
    recorder = services.recorder
    answered = recorder.answered.get(feedback.request_id)
    if answered is None:
        raise RequestNotFound(f"No answer with request id '{feedback.request_id}' within the feedback window "
                              f"({recorder.answered.retention_s:g} s, last {recorder.answered.max_ids} answers).",
                              param="request_id")
    recorder.record_feedback(feedback_record(
        request_id=feedback.request_id, score=feedback.score, thumbs=feedback.thumbs,
        task_type=feedback.task_type, comment=feedback.comment, route=answered.route, label=answered.task_type))
    metrics = services.metrics
    metrics.feedback.labels(answered.route, answered.task_type).inc()
    metrics.feedback_score.labels(answered.route, answered.task_type).observe(feedback.score)
    return Response(orjson.dumps({"request_id": feedback.request_id, "accepted": True}), media_type=JSON)
