"""The native Claude call's pieces, without HTTP: the body a route gets from the client's Messages
request (``passthrough_body``), and what the pipeline reads off Claude's events (first token, usage)."""

from __future__ import annotations

from typing import Any

import pytest

from router.dispatch import anthropic
from router.dispatch.anthropic import event_has_payload, usage_after_event
from router.dispatch.modes import build_request
from router.dispatch.upstream import NativeRequest, Usage
from router.policy.model import Backend

PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
CLAUDE = Backend(provider="anthropic", model="claude-sonnet-4-5", pricing=PRICE)
KIMI = Backend(provider="openai_compatible", flavour="vllm", model="moonshotai/Kimi-K2.5", pricing=PRICE)
HI = [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}]


def native(**fields: Any) -> NativeRequest:
    return NativeRequest({"model": "auto", "max_tokens": 4000, "messages": HI, **fields},
                         {"anthropic-beta": "interleaved-thinking-2025-05-14"})


def passthrough_body(request: NativeRequest | None, adapted: dict[str, Any], backend: Backend) -> dict[str, Any] | None:
    """The body the route gets (its headers are the client's, unchanged: checked once below)."""
    out = anthropic.passthrough_body(request, adapted, backend)
    if out is None:
        return None
    assert request is not None and out.headers == request.headers
    return out.body


def adapted(backend: Backend, *, mode: str = "default", cap: int | None = None, **chat: Any) -> dict[str, Any]:
    """The attempt's chat-shaped body, as the dispatcher builds it."""
    body = {"model": "auto", "max_tokens": 4000, "messages": [{"role": "user", "content": "Hi"}], **chat}
    return build_request(body, backend, mode, max_output_tokens=cap).body


def test_only_a_native_anthropic_backend_gets_a_native_body() -> None:
    assert passthrough_body(None, adapted(CLAUDE), CLAUDE) is None  # the chat door: translated as before
    assert passthrough_body(native(), adapted(KIMI), KIMI) is None  # a fallback to Kimi: chat-shaped
    assert passthrough_body(native(), adapted(CLAUDE), CLAUDE) == {
        "model": "claude-sonnet-4-5", "max_tokens": 4000, "messages": HI}


def test_stream_flag_follows_the_attempt() -> None:
    streamed = passthrough_body(native(stream=True), adapted(CLAUDE, stream=True), CLAUDE)
    assert streamed is not None and streamed["stream"] is True
    whole = passthrough_body(native(stream=False), adapted(CLAUDE), CLAUDE)
    assert whole is not None and "stream" not in whole


def test_the_money_cap_lowers_max_tokens_and_the_budget_follows() -> None:
    thinking = {"type": "enabled", "budget_tokens": 3000}
    out = passthrough_body(native(thinking=thinking), adapted(CLAUDE, cap=2500), CLAUDE)
    assert out is not None and out["max_tokens"] == 2500 and out["thinking"] == {"type": "enabled",
                                                                                  "budget_tokens": 2499}
    out = passthrough_body(native(thinking=thinking), adapted(CLAUDE, cap=1000), CLAUDE)
    assert out is not None and out["max_tokens"] == 1000 and "thinking" not in out  # no room for 1024


def test_a_thinking_mode_fills_in_thinking_the_client_did_not_send() -> None:
    out = passthrough_body(native(temperature=0.3), adapted(CLAUDE, mode="thinking", temperature=0.3), CLAUDE)
    assert out is not None and out["thinking"]["type"] == "enabled" and "temperature" not in out
    kept = {"type": "disabled"}
    out = passthrough_body(native(thinking=kept), adapted(CLAUDE, mode="thinking"), CLAUDE)
    assert out is not None and out["thinking"] == kept


@pytest.mark.parametrize(("fields", "gone"), [
    ({"temperature": 0.5, "top_p": 0.9}, {"top_p"}),
    ({"top_k": 4, "top_p": 0.9}, set()),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 0.5, "top_k": 4},
     {"temperature", "top_k"}),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "tool_choice": {"type": "tool", "name": "f"}},
     {"thinking"}),
])
def test_what_claude_cannot_take_together_is_dropped(fields: dict[str, Any], gone: set[str]) -> None:
    out = passthrough_body(native(**fields), adapted(CLAUDE), CLAUDE)
    assert out is not None and set(fields) - set(out) == gone


def test_the_first_token_is_content_not_the_opening() -> None:
    assert not event_has_payload({"type": "message_start", "message": {}})
    assert not event_has_payload({"type": "ping"})
    assert not event_has_payload({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    assert event_has_payload({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}})
    assert event_has_payload({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}})
    assert event_has_payload({"type": "message_delta", "delta": {"stop_reason": "end_turn"}})


def test_usage_from_message_start_then_message_delta() -> None:
    start = {"type": "message_start", "message": {"usage": {
        "input_tokens": 10, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 1}}}
    usage = usage_after_event(start, Usage())
    assert usage == Usage(input_tokens=1110, cached_input_tokens=1000, output_tokens=1)
    usage = usage_after_event({"type": "content_block_delta", "delta": {}}, usage)
    usage = usage_after_event({"type": "message_delta", "usage": {"output_tokens": 50}}, usage)
    assert usage == Usage(input_tokens=1110, cached_input_tokens=1000, output_tokens=50)
    # Newer API versions repeat the cumulative input counts on message_delta: they win.
    usage = usage_after_event({"type": "message_delta", "usage": {
        "input_tokens": 12, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": None,
        "output_tokens": 60}}, usage)
    assert usage == Usage(input_tokens=1012, cached_input_tokens=1000, output_tokens=60)
    assert usage_after_event({"type": "message_start", "message": "garbage"}, usage) == Usage()


def test_adjusted_params_name_what_the_native_call_changed() -> None:
    from router.dispatch.anthropic import passthrough_adjusted

    chat = {"model": "auto", "max_tokens": 4000, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2,
            "top_p": 0.9}
    assert passthrough_adjusted(native(temperature=0.2, top_p=0.9, stream=True), chat, CLAUDE, "default") == ["top_p"]
    assert passthrough_adjusted(native(), chat, CLAUDE, "default") == []
    assert passthrough_adjusted(native(), chat, KIMI, "instant") is None  # not a native route
    assert passthrough_adjusted(None, chat, CLAUDE, "default") is None  # not a Messages request


def test_the_beta_header_merges_the_clients_and_the_gateways_betas_once_each() -> None:
    beta_header = anthropic.beta_header
    assert beta_header(None, structured_outputs=False) is None
    assert beta_header("", structured_outputs=False) is None
    assert beta_header(None, structured_outputs=True) == anthropic.STRUCTURED_OUTPUTS_BETA
    claude_code = "claude-code-20250219, interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    assert beta_header(claude_code, structured_outputs=False) == (
        "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14")
    assert beta_header(f"{anthropic.STRUCTURED_OUTPUTS_BETA},context-1m-2025-08-07,context-1m-2025-08-07",
                       structured_outputs=True) == f"{anthropic.STRUCTURED_OUTPUTS_BETA},context-1m-2025-08-07"
    # the client's own sign-in (a Claude subscription's OAuth) is not the gateway's: it calls with an API key
    assert beta_header("oauth-2025-04-20,claude-code-20250219", structured_outputs=False) == "claude-code-20250219"
    assert beta_header("oauth-2025-04-20", structured_outputs=False) is None
    assert beta_header("a-2025-01-01,b\r\nx-evil: 1", structured_outputs=False) == "a-2025-01-01"
