"""How a demo upstream behaves: pacing, failure injection and the fake engine's capacity.

`DemoBehavior` is plain data, changed at runtime through `POST /_demo/behavior` or
`DemoUpstreams.set_behavior`. `FailureGate` turns fractional rates into a deterministic pattern
(no randomness), so a test that sets `error_rate=0.5` sees exactly every second request fail.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

ServerKind = Literal["vllm", "sglang", "openai", "anthropic", "moonshot"]
SERVER_KINDS: tuple[str, ...] = get_args(ServerKind)
ReasoningField = Literal["reasoning_content", "reasoning"]

_RATES = ("error_rate", "rate_limit_rate", "timeout_rate")


@dataclass(slots=True)
class DemoBehavior:
    """Knobs of one demo server. All delays are in the unit their name says."""

    ttft_ms: float = 30.0
    tokens_per_s: float = 400.0  # 0 = no per-token delay
    error_rate: float = 0.0  # share of requests answered with `error_status`
    error_status: int = 500
    rate_limit_rate: float = 0.0  # share answered 429 with `retry-after: <retry_after_s>`
    retry_after_s: float = 1.0
    timeout_rate: float = 0.0  # share that hang for `hang_s` before being answered normally
    hang_s: float = 300.0
    fail_after_chunks: int | None = None  # streams: abort the connection after N content chunks
    reasoning_field: ReasoningField = "reasoning_content"  # newer vLLM names it `reasoning`
    queue_waiting: int = 0  # added to the engine's reported waiting queue
    max_num_seqs: int = 256  # requests beyond this wait for a slot (and are reported as waiting)
    kv_cache_usage: float = 0.0  # reported as-is (0..1)
    # Request fields this model refuses with a 400, as OpenAI refuses `max_tokens` on GPT-5
    # (`unsupported_parameter`, `param` naming the field).
    refused_params: tuple[str, ...] = ()

    def merged(self, changes: Mapping[str, Any]) -> DemoBehavior:
        """A copy with `changes` applied; raises ValueError naming the bad field and the fix."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ValueError(f"unknown behaviour field(s) {unknown}; known: {sorted(fields)}")
        new = dataclasses.replace(self, **dict(changes))
        new._validate()
        return new

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def _validate(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"behaviour field {name!r} must be a number in 0..1, got {value!r}")
        for name in ("ttft_ms", "tokens_per_s", "retry_after_s", "hang_s", "kv_cache_usage"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"behaviour field {name!r} must be a number >= 0, got {value!r}")
        if not isinstance(self.error_status, int) or not 400 <= self.error_status <= 599:
            raise ValueError(f"behaviour field 'error_status' must be an HTTP error status, got "
                             f"{self.error_status!r}")
        if self.fail_after_chunks is not None and (
            not isinstance(self.fail_after_chunks, int) or self.fail_after_chunks < 0
        ):
            raise ValueError("behaviour field 'fail_after_chunks' must be null or an int >= 0, got "
                             f"{self.fail_after_chunks!r}")
        if self.reasoning_field not in get_args(ReasoningField):
            raise ValueError("behaviour field 'reasoning_field' must be one of "
                             f"{list(get_args(ReasoningField))}, got {self.reasoning_field!r}")
        if not isinstance(self.refused_params, list | tuple) or not all(
                isinstance(p, str) for p in self.refused_params):
            raise ValueError(f"behaviour field 'refused_params' must be a list of field names, got "
                             f"{self.refused_params!r}")
        for name in ("queue_waiting", "max_num_seqs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name == "max_num_seqs" else 0):
                raise ValueError(f"behaviour field {name!r} must be a non-negative int "
                                 f"(max_num_seqs >= 1), got {value!r}")


class FailureGate:
    """Deterministic Bernoulli stand-in: request n of a knob fails when floor((n+1)·r) > floor(n·r).

    Rate 0 never fires, rate 1 always fires, and 0.25 fires on exactly every fourth request.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def fires(self, knob: str, rate: float) -> bool:
        if rate <= 0.0:
            return False
        n = self._counts.get(knob, 0)
        self._counts[knob] = n + 1
        return rate >= 1.0 or math.floor((n + 1) * rate) > math.floor(n * rate)

    def reset(self) -> None:
        self._counts.clear()
