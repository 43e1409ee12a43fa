"""The router object's ``adjusted_params`` may come from the dispatch's own build of the body
(``AttemptLog.adjusted``) instead of a second ``build_request``: that holds when the cost cap left the
body alone, whatever the deadline (it only sizes Claude's thinking budget). Checked over every backend
of the packaged policy, every mode, and requests that make each dialect adjust something."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from router.dispatch.modes import adjusted_params, build_request
from router.policy.loader import load_policy_text
from tests.conftest import default_policy

ENV = {"KIMI_API_BASE": "http://kimi.test/v1", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
HI = [{"role": "user", "content": "Hi"}]
BODIES: list[dict[str, Any]] = [
    {"messages": HI},
    {"messages": HI, "temperature": 0.7, "top_p": 0.9, "max_tokens": 300, "seed": 7, "stop": ["END"],
     "presence_penalty": 0.1, "logprobs": True, "reasoning_effort": "low", "n": 1, "stream": True},
    {"messages": HI, "temperature": 1.7, "top_k": 5, "max_completion_tokens": 4000, "reasoning_effort": "high",
     "chat_template_kwargs": {"thinking": True}},
    {"messages": HI, "temperature": 0.2, "tool_choice": "required",
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
]
MODES = ["instant", "thinking", "agent", "default"]
POLICY = load_policy_text(yaml.safe_dump(default_policy()), env=ENV).policy


@pytest.mark.parametrize("backend_name", sorted(POLICY.backends))
def test_the_dispatch_build_names_what_adjusted_params_names_when_no_cap_binds(backend_name: str) -> None:
    backend = POLICY.backends[backend_name]
    adjusted_somewhere = False
    for body in BODIES:
        for mode in MODES:
            expected = adjusted_params(body, backend, mode)
            for deadline in (None, time.perf_counter() + 0.05, time.perf_counter() + 60.0, time.perf_counter() - 1):
                built = build_request(body, backend, mode, max_output_tokens=None, deadline=deadline)
                assert list(built.adjusted) == expected, (body, mode, deadline)
            adjusted_somewhere = adjusted_somewhere or bool(expected)
    assert adjusted_somewhere  # the bodies do exercise this dialect's adjustments


def test_a_binding_cap_can_change_what_is_adjusted_so_it_is_not_reused() -> None:
    """Why ``AttemptLog.adjusted`` is None under a cap: Claude left without room to think keeps the
    client's temperature, which thinking would have dropped."""
    claude = next(b for b in POLICY.backends.values() if b.provider == "anthropic")
    body = {"messages": HI, "temperature": 0.5, "max_tokens": 8000}
    uncapped = build_request(body, claude, "thinking", max_output_tokens=None)
    capped = build_request(body, claude, "thinking", max_output_tokens=100)
    assert "temperature" in uncapped.adjusted and "temperature" not in capped.adjusted
