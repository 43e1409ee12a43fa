"""The demo truth: a hidden quality table, so the tuning loop can be checked against what is true.

With ``ROUTER_DEMO_QUALITY=FILE`` (YAML)::

    noise: 0.1          # sd of an answer's latent quality around its mean
    judge_noise: 0.05   # sd of the demo judge's score around the latent quality
    models: {gpt-5-mini: gpt-mini}   # served model -> backend name, where a server serves several
    quality:            # {task_type: {route: mean}}
      simple: {kimi:instant: 0.9, gpt:default: 0.9}

each demo answer carries a latent quality drawn around the mean for its task type and route (the
task type is what the packaged classifier says about the prompt, with no confidence floor: the
demo's stand-in for "what the request really is"; the gateway hands in ``task_type_of``, since the
demo imports no gateway code). The value travels in the answer text as a
marker, ``[demo-quality 0.812]``, which the ``demo-judge`` model (on the demo OpenAI server) reads
and scores with noise, and from which tests generate users' feedback. Draws are seeded by the
prompt and the route, so the same request always gets the same answer.
"""

from __future__ import annotations

import dataclasses
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from router.demo.answers import pieces
from router.demo.replies import Planned

JUDGE_MODEL = "demo-judge"
_MARKER = re.compile(r"\[demo-quality (\d(?:\.\d+)?)\]")


def read_marker(text: str) -> float | None:
    """The latent quality an answer carries (the last marker in ``text``), or None."""
    found = _MARKER.findall(text or "")
    return float(found[-1]) if found else None


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _seed(*parts: str) -> int:
    return zlib.crc32("\x1f".join(parts).encode("utf-8", "surrogatepass"))


@dataclass
class DemoQuality:
    quality: dict[str, dict[str, float]]
    noise: float = 0.1
    judge_noise: float = 0.05
    models: dict[str, str] = field(default_factory=lambda: {"gpt-5-mini": "gpt-mini"})
    # What the request really is: the gateway hands in its classifier (the demo imports no gateway code).
    task_type_of: Callable[[str], str] | None = None

    @classmethod
    def load(cls, path: Path, *, task_type_of: Callable[[str], str] | None = None) -> DemoQuality:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        table = data.get("quality", data)  # a bare {task: {route: mean}} file works too
        models = {"gpt-5-mini": "gpt-mini", **(data.get("models") or {})}
        means: dict[str, dict[str, float]] = {}
        for task, routes in (table or {}).items():
            if isinstance(routes, dict):
                means[str(task)] = {str(r): float(q) for r, q in routes.items()}
        return cls(means,
                   noise=float(data.get("noise", 0.1)), judge_noise=float(data.get("judge_noise", 0.05)),
                   models=models, task_type_of=task_type_of)

    def task_type(self, prompt: str) -> str | None:
        return self.task_type_of(prompt) if self.task_type_of is not None else None

    def route(self, server: str, kind: str, model: str, mode: str) -> str:
        backend = self.models.get(model, server)
        return f"{backend}:{'default' if kind in ('openai', 'anthropic') else mode}"

    def latent(self, task_type: str, route: str, prompt: str) -> float | None:
        mean = self.quality.get(task_type, {}).get(route)
        if mean is None:
            return None
        return round(_clip(random.Random(_seed(prompt, route)).gauss(mean, self.noise)), 3)

    def judge(self, text: str) -> float | None:
        """The demo judge's score for a judging prompt that contains an answer."""
        latent = read_marker(text)
        if latent is None:
            return None
        return round(_clip(random.Random(_seed(text, "judge")).gauss(latent, self.judge_noise)), 3)

    @staticmethod
    def marker(value: float) -> str:
        return f" [demo-quality {value:.3f}]"


def simulated_feedback(answer_text: str, rng: random.Random, *, noise: float = 0.1,
                       thumbs_share: float = 0.5) -> dict[str, Any] | None:
    """A user's feedback on a demo answer, generated from its latent quality (tests, walkthrough):
    a thumb (up with probability = quality) or a score around it."""
    latent = read_marker(answer_text)
    if latent is None:
        return None
    if rng.random() < thumbs_share:
        return {"thumbs": "up" if rng.random() < latent else "down"}
    return {"score": round(_clip(rng.gauss(latent, noise)), 3)}


def judge_reply(quality: DemoQuality | None, messages: list[dict[str, Any]]) -> str:
    """The demo judge's answer: ``{"score": x}`` (null when the prompt carries no latent quality)."""
    text = "\n".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))
    score = quality.judge(text) if quality is not None else None
    return orjson.dumps({"score": score}).decode()


def mark_answer(quality: DemoQuality | None, planned: Planned, *, server: str, kind: str, model: str) -> Planned:
    """``planned`` with its latent quality appended to the content (chat and aggregator answers that
    ran to their end; tool calls and cut answers carry none)."""
    completion = planned.completion
    if quality is None or planned.role not in ("chat", "aggregator") or completion.tool_call is not None \
            or completion.finish_reason != "stop":
        return planned
    prompt = planned.conversation.last_user
    task_type = quality.task_type(prompt)
    route = "swarm" if planned.role == "aggregator" else quality.route(server, kind, model, planned.mode)
    latent = quality.latent(task_type, route, prompt) if task_type is not None else None
    if latent is None:
        return planned
    marked = dataclasses.replace(completion, content=[*completion.content, *pieces(quality.marker(latent))])
    return dataclasses.replace(planned, completion=marked)
