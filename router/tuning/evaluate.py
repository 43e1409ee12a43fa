"""``model-router eval``: answer quality per (task type, route), measured with a judge model.

Every prompt is sent through the gateway to each route (``model=<route>``), and the judge grades
each answer on its own with a fixed rubric for the prompt's task type: an **absolute 0–1 score**.
Why absolute rather than position-swapped pairwise: ``tune`` needs each (task type, route) on the
same 0–1 scale as the policy's priors, ``min_quality`` and users' feedback; pairwise preferences
only rank routes against each other and need a reference route (and two judge calls per pair)
before they say anything about the level. The judge's own bias is the same for every route.

- Bounded concurrency; a hard ``max_cost`` for the whole run: each call carries a ceiling
  (``router.max_cost_usd``) no larger than the budget not yet reserved, and the gateway enforces
  ceilings on actual usage, so the run cannot spend more (judge calls made outside the gateway,
  with ``--judge-base-url``, are not priced and not counted).
- Resumable: results are appended to ``out`` as they come; a rerun skips (prompt, route) pairs
  already there.
- A progress bar on stderr; a table with 95 % bootstrap confidence intervals at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

RUBRICS: dict[str, str] = {
    "simple": "Is the answer correct, direct and complete for a factual or everyday question?",
    "reasoning": "Is the reasoning sound and the final answer correct, with the key steps shown?",
    "coding": "Is the code correct, runnable and idiomatic, and does it address the whole request?",
    "agentic": "Would the plan or actions accomplish the task safely, in the right order, with the right tools?",
    "decomposable": "Does the answer cover every requested item accurately and comparably?",
    "creative": "Is the writing original, fitting the requested tone, format and length?",
    "long_context": "Does the answer use the supplied document faithfully, without inventing facts?",
    "vision": "Does the answer describe and reason about the visual input correctly?",
}
_SCORE = re.compile(r"[-+]?\d*\.?\d+")


@dataclass(frozen=True, slots=True)
class EvalPrompt:
    prompt_id: str
    task_type: str
    messages: list[dict[str, Any]]


@dataclass(slots=True)
class Budget:
    """Money the run may still commit: reserved before a call, settled to actual cost after it."""

    limit: float
    per_call: float
    spent: float = 0.0
    reserved: float = 0.0

    def reserve(self) -> float:
        """A full ``per_call`` ceiling, or the last money when nothing else is in flight; 0 = wait."""
        available = self.limit - self.spent - self.reserved
        if available >= self.per_call:
            amount = self.per_call
        elif not self.reserved and available > 1e-9:
            amount = available
        else:
            return 0.0
        self.reserved += amount
        return amount

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved -= reserved
        self.spent += min(actual, reserved)


@dataclass(slots=True)
class EvalRun:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_done: int = 0
    stopped_for_budget: int = 0
    failed: int = 0


def prompt_id(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def load_prompt_file(path: Path) -> list[EvalPrompt]:
    """JSONL rows with ``messages`` or ``prompt``/``text``, and ``task_type`` or ``label``."""
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = orjson.loads(line)
        messages = row.get("messages") or [{"role": "user", "content": row.get("prompt") or row.get("text")}]
        task = row.get("task_type") or row.get("label") or "simple"
        prompts.append(EvalPrompt(str(row.get("id") or prompt_id(messages)), str(task), messages))
    return prompts


def prompts_from_log(con: Any, limit: int, seed: int) -> list[EvalPrompt]:
    """Prompts of a decision log written with ``ROUTER_LOG_PROMPTS=true`` (a random sample)."""
    rows = con.execute(f"""
        SELECT prompt_sha256, eval_type, any_value(prompt_messages) FROM decisions
        WHERE prompt_messages IS NOT NULL GROUP BY 1, 2
        ORDER BY hash(prompt_sha256 || '{int(seed)}') LIMIT {int(limit)}""").fetchall()
    return [EvalPrompt(str(h)[:16], str(t), orjson.loads(m)) for h, t, m in rows]


def sample(prompts: list[EvalPrompt], n: int | None, seed: int) -> list[EvalPrompt]:
    if n is None or n >= len(prompts):
        return prompts
    rng = np.random.default_rng(seed)
    return [prompts[i] for i in sorted(rng.choice(len(prompts), size=n, replace=False))]


def judge_messages(task_type: str, messages: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    question = "\n".join(str(m.get("content")) for m in messages if m.get("role") == "user")
    rubric = RUBRICS.get(task_type, RUBRICS["simple"])
    return [
        {"role": "system", "content": "You grade answers. Reply with JSON only: {\"score\": <0.0-1.0>} where 1.0 is "
                                      "an excellent answer and 0.0 a useless one."},
        {"role": "user", "content": f"Task type: {task_type}\nCriterion: {rubric}\n\n<question>\n{question}\n"
                                    f"</question>\n\n<answer>\n{answer}\n</answer>"},
    ]


def parse_score(text: str) -> float | None:
    try:
        value = orjson.loads(text).get("score")
        if value is None:
            return None
        score = float(value)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        found = _SCORE.search(text or "")
        if not found:
            return None
        score = float(found.group())
    return score if 0.0 <= score <= 1.0 else None


def _done(out: Path) -> set[tuple[str, str]]:
    done: set[tuple[str, str]] = set()
    if not out.exists():
        return done
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line cut by an interrupted run: that pair is done again
        if row.get("score") is not None:
            done.add((row["prompt_id"], row["route"]))
    return done


class Progress:
    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self._last = 0.0

    def step(self, spent: float) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        width = 30
        filled = int(width * self.done / max(1, self.total))
        self.stream.write(f"\reval [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} ${spent:.4f}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


async def run_eval(prompts: Sequence[EvalPrompt], routes: Sequence[str], *, gateway: str, judge: str, out: Path,
                   max_cost: float, per_call: float | None = None, concurrency: int = 8, api_key: str = "unused",
                   judge_base_url: str | None = None, judge_api_key: str | None = None,
                   progress: bool = True) -> EvalRun:
    import openai

    done = _done(out)
    todo = [(p, r) for p in prompts for r in routes if (p.prompt_id, r) not in done]
    run = EvalRun(skipped_done=len(prompts) * len(routes) - len(todo))
    # Every slot can hold a reservation at once; the gateway caps each call at its reservation.
    budget = Budget(limit=max_cost, per_call=per_call or max_cost / max(1, concurrency))
    client = openai.AsyncOpenAI(base_url=f"{gateway.rstrip('/')}/v1", api_key=api_key, max_retries=1, timeout=300)
    judge_client = client if judge_base_url is None else openai.AsyncOpenAI(
        base_url=judge_base_url, api_key=judge_api_key or api_key, max_retries=1, timeout=300)
    gate = asyncio.Semaphore(concurrency)
    bar = Progress(len(todo)) if progress else None
    sink = out.open("ab")

    settled = asyncio.Condition()

    async def reserve() -> float:
        async with settled:
            while True:
                amount = budget.reserve()
                if amount > 0:
                    return amount
                if not budget.reserved:
                    raise _OverBudget  # spent, not merely reserved by calls in flight
                await settled.wait()

    async def call(c: Any, model: str, messages: list[dict[str, Any]], through_gateway: bool) -> tuple[str, float]:
        ceiling = await reserve() if through_gateway else 0.0
        extra = {"router": {"max_cost_usd": ceiling}} if through_gateway else None
        cost = 0.0
        try:
            raw = await c.chat.completions.with_raw_response.create(model=model, messages=messages, extra_body=extra)
            reply = raw.parse()
            cost = float(raw.headers.get("x-router-cost-usd") or 0.0)
            return reply.choices[0].message.content or "", cost
        except openai.BadRequestError as exc:
            if through_gateway and ceiling < budget.per_call and (exc.code == "route_infeasible"):
                raise _OverBudget from None  # what is left of --max-cost cannot pay for this call
            raise
        finally:
            if through_gateway:
                budget.settle(ceiling, cost)
                async with settled:
                    settled.notify_all()

    async def one(prompt: EvalPrompt, route: str) -> None:
        async with gate:
            row: dict[str, Any] = {"prompt_id": prompt.prompt_id, "task_type": prompt.task_type, "route": route,
                                   "judge": judge, "score": None, "ts": time.time()}
            started = time.perf_counter()
            try:
                answer, cost = await call(client, route, prompt.messages, True)
                row["cost_usd"] = cost
                row["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
                verdict, judge_cost = await call(judge_client, judge, judge_messages(prompt.task_type, prompt.messages,
                                                                                   answer), judge_base_url is None)
                row["judge_cost_usd"] = judge_cost
                row["score"] = parse_score(verdict)
                if row["score"] is None:
                    row["error"] = "judge gave no score"
            except _OverBudget:
                run.stopped_for_budget += 1
                row["error"] = "max_cost reached"
            except openai.APIError as exc:
                run.failed += 1
                row["error"] = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"[:300]
            if row.get("error") != "max_cost reached":
                sink.write(orjson.dumps(row) + b"\n")
                sink.flush()
                run.rows.append(row)
            if bar:
                bar.step(budget.spent)

    try:
        await asyncio.gather(*(one(p, r) for p, r in todo))
    finally:
        sink.close()
        await client.close()
        if judge_client is not client:
            await judge_client.close()
    return run


class _OverBudget(Exception):
    pass


def bootstrap_table(rows: Sequence[dict[str, Any]], *, resamples: int = 1000,
                    seed: int = 0) -> list[tuple[str, str, int, float, float, float]]:
    """(task type, route, n, mean, 95 % CI low, high) per cell, percentile bootstrap."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row.get("score") is not None:
            cells[(row["task_type"], row["route"])].append(float(row["score"]))
    rng = np.random.default_rng(seed)
    table = []
    for (task, route), scores in sorted(cells.items()):
        values = np.asarray(scores)
        means = rng.choice(values, size=(resamples, values.size), replace=True).mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        table.append((task, route, values.size, float(values.mean()), float(low), float(high)))
    return table


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return rows


def format_table(table: Sequence[tuple[str, str, int, float, float, float]]) -> str:
    lines = [f"{'task type':<14}{'route':<20}{'n':>5}  {'quality':>7}  95% CI", "-" * 62]
    for task, route, n, mean, low, high in table:
        ci = "" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"
        lines.append(f"{task:<14}{route:<20}{n:>5}  {mean:>7.3f}  {ci}")
    return "\n".join(lines)
