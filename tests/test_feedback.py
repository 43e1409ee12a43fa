"""POST /v1/feedback on a real gateway: accepted, recorded in the decision log and metrics; bad input
gets OpenAI-shaped errors; auth like every /v1 route."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from router.feedback import AnsweredRequests, parse_feedback
from tests.conftest import Gateway


@pytest.fixture
def logged(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> Gateway:
    return gateway_factory(settings={"decision_log": str(tmp_path / "decisions.jsonl")})


def _answer(gw: Gateway) -> tuple[str, str]:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    return raw.headers["x-router-request-id"], raw.headers["x-router-route"]


def _records(gw: Gateway) -> list[dict[str, Any]]:
    gw.services.recorder.log.flush()
    path = Path(gw.services.settings.decision_log)
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_feedback_is_accepted_logged_and_counted(logged: Gateway) -> None:
    request_id, route = _answer(logged)
    first = httpx.post(f"{logged.url}/v1/feedback", json={"request_id": request_id, "thumbs": "down"})
    second = httpx.post(f"{logged.url}/v1/feedback",
                        json={"request_id": request_id, "score": 0.8, "task_type": "reasoning", "comment": "ok"})
    assert first.status_code == second.status_code == 200
    assert second.json() == {"request_id": request_id, "accepted": True}
    records = _records(logged)
    decision = next(r for r in records if r["event"] == "decision")
    assert decision["request_id"] == request_id and decision["route"] == route
    feedback = [r for r in records if r["event"] == "feedback"]
    assert [(f["score"], f["thumbs"], f["corrected_task_type"]) for f in feedback] == \
        [(0.0, "down", None), (0.8, None, "reasoning")]
    assert feedback[-1]["route"] == route and feedback[-1]["task_type"] == "simple"
    metrics = httpx.get(f"{logged.url}/metrics").text
    assert f'router_feedback_total{{route="{route}",task_type="simple"}} 2.0' in metrics
    assert 'router_feedback_score_count{route="' in metrics

    # The last feedback wins when the log is read.
    from router.tuning.logs import open_logs

    con = open_logs([logged.services.settings.decision_log])
    assert con.execute("SELECT score, corrected_task_type, times FROM feedback").fetchall() == [(0.8, "reasoning", 2)]


@pytest.mark.parametrize(("body", "status", "code", "param"), [
    ({"request_id": "rtr-0000", "score": 0.5}, 404, "request_not_found", "request_id"),
    ({"request_id": "ID", "score": 2}, 400, None, "score"),
    ({"request_id": "ID", "score": -0.1}, 400, None, "score"),
    ({"request_id": "ID", "score": True}, 400, None, "score"),
    ({"request_id": "ID", "thumbs": "sideways"}, 400, None, "thumbs"),
    ({"request_id": "ID"}, 400, None, "score"),
    ({"request_id": "ID", "score": 1, "thumbs": "up"}, 400, None, "score"),
    ({"request_id": "ID", "score": 1, "task_type": "poetry"}, 400, None, "task_type"),
    ({"score": 1}, 400, None, "request_id"),
    ([1, 2], 400, None, None),
])
def test_bad_feedback_gets_openai_shaped_errors(gateway: Gateway, body: Any, status: int, code: str | None,
                                                param: str | None) -> None:
    if isinstance(body, dict) and body.get("request_id") == "ID":
        body["request_id"] = _answer(gateway)[0]
    response = httpx.post(f"{gateway.url}/v1/feedback", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code and error["param"] == param


@pytest.mark.parametrize("raw", [b"", b"{not json", b"   "])
def test_missing_or_broken_body_is_a_400(gateway: Gateway, raw: bytes) -> None:
    response = httpx.post(f"{gateway.url}/v1/feedback", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_feedback_needs_a_client_key_when_auth_is_on(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(settings={"client_keys": "sk-good"})
    request_id = gw.client(api_key="sk-good").chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]).headers["x-router-request-id"]
    denied = httpx.post(f"{gw.url}/v1/feedback", json={"request_id": request_id, "score": 1})
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    ok = httpx.post(f"{gw.url}/v1/feedback", json={"request_id": request_id, "score": 1},
                    headers={"authorization": "Bearer sk-good"})
    assert ok.status_code == 200


def test_the_answered_window_is_bounded_in_count_and_time() -> None:
    now = [0.0]
    book = AnsweredRequests(retention_s=60, max_ids=4, clock=lambda: now[0])
    for i in range(9):
        book.remember(f"rtr-{i}", "kimi:instant", "simple")
        assert len(book) <= 4
    assert book.get("rtr-0") is None and book.get("rtr-5") is None
    assert book.get("rtr-6") is not None and book.get("rtr-8") is not None
    now[0] = 61
    assert book.get("rtr-4") is None


def test_thumbs_map_to_scores() -> None:
    assert parse_feedback({"request_id": "rtr-1", "thumbs": "up"}).score == 1.0
    assert parse_feedback({"request_id": "rtr-1", "thumbs": "down"}).score == 0.0
