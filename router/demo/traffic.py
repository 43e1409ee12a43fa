"""Simulated users for the tuning loop on the demo: prompts through ``model=auto``, feedback on a share.

    python -m router.demo.traffic --gateway http://127.0.0.1:8080 --requests 2000 --feedback 0.33

Prompts come from the labelled corpus shipped with the classifier (``classifiers/data/*.jsonl``).
Feedback is generated from each demo answer's latent quality (``router.demo.quality``): a thumb or
a score, and on a share of it a ``task_type`` (the corpus label, as a user correcting the label).
Uses the official ``openai`` async client with bounded concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from router.demo.quality import simulated_feedback

CORPUS = Path(__file__).resolve().parent.parent.parent / "classifiers" / "data"


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    label: str


@dataclass(slots=True)
class TrafficResult:
    sent: int = 0
    answered: int = 0
    errors: int = 0
    feedback: int = 0
    routes: dict[str, int] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)
    # The first few failed requests: (HTTP status, None for a connection-level error; what was said).
    failures: list[tuple[int | None, str]] = field(default_factory=list)


def load_prompts(task_types: list[str] | None = None, corpus: Path = CORPUS) -> list[Prompt]:
    prompts = []
    for path in sorted(corpus.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = orjson.loads(line)
            if task_types is None or row["label"] in task_types:
                prompts.append(Prompt(row["text"], row["label"]))
    return prompts


async def run_traffic(base_url: str, prompts: list[Prompt], *, requests: int, feedback_share: float = 1 / 3,
                      correction_share: float = 0.5, stream_share: float = 0.2, concurrency: int = 16,
                      seed: int = 7, api_key: str = "demo") -> TrafficResult:
    import httpx
    import openai

    rng = random.Random(seed)
    plan = [(rng.choice(prompts), rng.random() < stream_share, rng.random() < feedback_share,
             rng.random() < correction_share, random.Random(rng.random())) for _ in range(requests)]
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=120)
    http = httpx.AsyncClient(base_url=base_url, headers={"authorization": f"Bearer {api_key}"}, timeout=30)
    result = TrafficResult()
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: Prompt, stream: bool, give_feedback: bool, correct: bool, own: random.Random) -> None:
        async with gate:
            result.sent += 1
            messages: Any = [{"role": "user", "content": prompt.text}]
            try:
                if stream:
                    text, request_id, route = await _streamed(client, messages)
                else:
                    raw = await client.chat.completions.with_raw_response.create(model="auto", messages=messages)
                    reply = raw.parse()
                    text = reply.choices[0].message.content or ""
                    request_id, route = raw.headers["x-router-request-id"], raw.headers["x-router-route"]
            except openai.APIError as exc:
                result.errors += 1
                if result.errors <= 10:
                    status = getattr(exc, "status_code", None)
                    said = f"{'stream' if stream else 'json'} {type(exc).__name__}: {exc.body or exc}"
                    result.failures.append((status, said))
                    print(f"traffic: {status} {said}", file=sys.stderr)
                return
            result.answered += 1
            result.routes[route] = result.routes.get(route, 0) + 1
            result.request_ids.append(request_id)
            if not give_feedback:
                return
            body = simulated_feedback(text, own)
            if body is None:
                return
            if correct:
                body["task_type"] = prompt.label
            response = await http.post("/v1/feedback", json={"request_id": request_id, **body})
            if response.status_code == 200:
                result.feedback += 1

    try:
        await asyncio.gather(*(one(*item) for item in plan))
    finally:
        await client.close()
        await http.aclose()
    return result


async def _streamed(client: Any, messages: Any) -> tuple[str, str, str]:
    parts: list[str] = []
    request_id = route = ""
    stream = await client.chat.completions.create(model="auto", messages=messages, stream=True)
    async for chunk in stream:
        extra = getattr(chunk, "model_extra", None) or {}
        if extra.get("router"):  # the last chunk before [DONE] repeats the decision
            request_id, route = extra["router"]["request_id"], extra["router"]["route"]
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts), request_id, route


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router.demo.traffic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--feedback", type=float, default=1 / 3, help="share of answers that get feedback")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--task-types", default="simple,reasoning,coding,creative,agentic",
                        help="corpus labels to draw prompts from (decomposable runs swarms: slow)")
    parser.add_argument("--api-key", default="demo")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    prompts = load_prompts(args.task_types.split(","))
    result = asyncio.run(run_traffic(args.gateway, prompts, requests=args.requests, feedback_share=args.feedback,
                                     concurrency=args.concurrency, seed=args.seed, api_key=args.api_key))
    print(f"{result.answered}/{result.sent} answered ({result.errors} errors), {result.feedback} feedback; "
          f"routes: {dict(sorted(result.routes.items()))}", file=sys.stderr)
    return 0 if result.answered else 1


if __name__ == "__main__":
    sys.exit(main())
