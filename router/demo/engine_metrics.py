"""The engine metrics a real vLLM or SGLang server exposes at `/metrics` (Prometheus text format).

Waiting = `queue_waiting` (behaviour) + requests beyond `max_num_seqs`; running = requests holding a
slot. Only the names the router scrapes are guaranteed; a few token counters come along for realism.
"""

from __future__ import annotations

from router.demo.server_state import DemoServerState


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value))


def render(state: DemoServerState) -> str:
    if state.spec.kind == "vllm":
        return _render_vllm(state)
    if state.spec.kind == "sglang":
        return _render_sglang(state)
    raise ValueError(f"server {state.spec.name!r} is kind {state.spec.kind!r}; engine metrics exist "
                     "only for kinds 'vllm' and 'sglang'")


def _gauge(lines: list[str], name: str, help_text: str, labels: str, value: float,
           kind: str = "gauge") -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{{{labels}}} {_number(value)}"]


def _histogram(lines: list[str], name: str, help_text: str, labels: str, state: DemoServerState) -> None:
    hist = state.ttft
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    cumulative = 0
    for bound, count in zip(hist.buckets, hist.counts, strict=False):
        cumulative += count
        lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {_number(cumulative)}')
    lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {_number(hist.count)}')
    lines.append(f"{name}_sum{{{labels}}} {_number(hist.sum)}")
    lines.append(f"{name}_count{{{labels}}} {_number(hist.count)}")


def _render_vllm(state: DemoServerState) -> str:
    labels = f'engine="0",model_name="{_escape(state.spec.served_model)}"'
    behavior, slots = state.behavior, state.slots
    lines: list[str] = []
    _gauge(lines, "vllm:num_requests_running", "Number of requests in model execution batches.",
           labels, slots.running)
    _gauge(lines, "vllm:num_requests_waiting", "Number of requests waiting to be processed.",
           labels, behavior.queue_waiting + slots.waiting)
    _gauge(lines, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
           labels, behavior.kv_cache_usage)
    _gauge(lines, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", labels,
           state.prompt_tokens_total, kind="counter")
    _gauge(lines, "vllm:generation_tokens_total", "Number of generation tokens processed.", labels,
           state.generation_tokens_total, kind="counter")
    _histogram(lines, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
               labels, state)
    return "\n".join(lines) + "\n"


def _render_sglang(state: DemoServerState) -> str:
    labels = f'model_name="{_escape(state.spec.served_model)}"'
    behavior, slots = state.behavior, state.slots
    lines: list[str] = []
    _gauge(lines, "sglang:num_running_reqs", "The number of running requests.", labels, slots.running)
    _gauge(lines, "sglang:num_queue_reqs", "The number of requests in the waiting queue.", labels,
           behavior.queue_waiting + slots.waiting)
    _gauge(lines, "sglang:token_usage", "The token usage.", labels, behavior.kv_cache_usage)
    _gauge(lines, "sglang:prompt_tokens_total", "Number of prefill tokens processed.", labels,
           state.prompt_tokens_total, kind="counter")
    _gauge(lines, "sglang:generation_tokens_total", "Number of generation tokens processed.", labels,
           state.generation_tokens_total, kind="counter")
    _histogram(lines, "sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
               labels, state)
    return "\n".join(lines) + "\n"
