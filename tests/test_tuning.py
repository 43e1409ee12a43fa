"""The tuning loop's parts on a real gateway: decision records that replay exactly, the shadow policy,
`tune`/`replay` on corrupt and scarce logs, candidates `check-policy` accepts with comments kept."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from router.cli import main
from router.settings import PACKAGED_POLICY
from tests.conftest import Gateway, default_policy

PROMPTS = ["What is the capital of Peru?", "Write a python function that reverses a linked list",
           "Write a haiku about autumn", "Prove that the square root of 2 is irrational",
           "Should I pay off my 24% APR credit card or keep an emergency fund? Think it through."]


def _traffic(gw: Gateway, n: int, **extra: Any) -> list[str]:
    client = gw.client()
    ids = []
    for i in range(n):
        kwargs: dict[str, Any] = dict(extra)
        if i % 4 == 3:
            kwargs["extra_body"] = {"router": {"max_cost_usd": 0.004}}
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], **kwargs)
        ids.append(raw.headers["x-router-request-id"])
    return ids


def _log(gw: Gateway) -> Path:
    gw.services.recorder.log.flush()
    return Path(gw.services.settings.decision_log)


def test_exact_replay_of_the_live_policy_reproduces_every_logged_decision(
        gateway_factory: Callable[..., Gateway], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gw = gateway_factory(default_policy(exploration={"rate": 0.3}),
                         settings={"decision_log": str(tmp_path / "d.jsonl")})
    _traffic(gw, 40)
    log = _log(gw)
    records = [orjson.loads(x) for x in log.read_bytes().splitlines()]
    assert len(records) == 40 and any(r["explored"] for r in records)
    # exploration is counted off the request thread (by the log's writer), and exactly
    assert _explored_total(gw) == sum(1 for r in records if r["explored"])
    assert all("prompt_messages" not in r and len(r["prompt_sha256"]) == 64 for r in records)
    assert any(r["signals"]["routes"] for r in records)
    live = tmp_path / "live.yaml"
    shutil.copy(gw.policy_path, live)
    assert main(["replay", "--log", str(log), "--policy", str(live), "--exact", "--json"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["same_decision_share"] == 1.0 and out["rows"] == 40


def _explored_total(gw: Gateway) -> float:
    return sum(s.value for m in gw.services.metrics.exploration.collect() for s in m.samples
               if s.name.endswith("_total"))


def test_exploration_is_counted_without_a_decision_log(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_policy(exploration={"rate": 0.5}))
    _traffic(gw, 24)
    assert 0 < _explored_total(gw) <= 24  # counted on the request thread (nothing is queued)


def test_prompts_are_logged_only_when_asked(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw = gateway_factory(settings={"decision_log": str(tmp_path / "d.jsonl"), "log_prompts": True})
    _traffic(gw, 1)
    record = orjson.loads(_log(gw).read_bytes().splitlines()[0])
    assert record["prompt_messages"] == [{"role": "user", "content": PROMPTS[0]}]


def test_shadow_policy_decides_after_each_answer_and_is_never_dispatched(
        gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    shadow = tmp_path / "shadow.yaml"
    # The shadow sends simple requests to gpt-mini (a higher bar than kimi:instant's prior).
    shadow.write_text(yaml.safe_dump(default_policy(tasks={"simple": {"min_quality": 0.91}},
                                                    quality={"simple": {"gpt-mini:default": 0.95}})))
    gw = gateway_factory(default_policy(shadow=str(shadow)), settings={"decision_log": str(tmp_path / "d.jsonl")})
    gw.demo.reset()
    for _ in range(3):
        gw.client().chat.completions.create(model="auto", messages=[{"role": "user", "content": PROMPTS[0]}])
    records = [orjson.loads(x) for x in _log(gw).read_bytes().splitlines()]
    assert [(r["route"], r["shadow_route"]) for r in records] == [("kimi:instant", "gpt-mini:default")] * 3
    assert gw.demo.stats("gpt")["requests"] == 0  # decided, never dispatched
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'router_shadow_decisions_total{route="kimi:instant",shadow_route="gpt-mini:default"} 3.0' in metrics
    assert 'router_shadow_estimated_cost_usd_total{shadow_route="gpt-mini:default"}' in metrics


def test_corrupt_lines_are_skipped_and_counted(gateway_factory: Callable[..., Gateway], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gw = gateway_factory(settings={"decision_log": str(tmp_path / "d.jsonl")})
    _traffic(gw, 10)
    log = _log(gw)
    with log.open("ab") as f:
        f.write(b"not json\n{\"event\": \"decision\", \"request_id\": \n\x00\x01garbage\n")
    assert main(["replay", "--log", str(log), "--policy", str(gw.policy_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert orjson.loads(captured.out)["corrupt_lines_skipped"] == 3
    assert "3 corrupt log line(s) skipped" in captured.err
    assert main(["tune", "--log", str(log), "--policy", str(gw.policy_path), "--out", str(tmp_path / "c.yaml"),
                 "--report", str(tmp_path / "report")]) == 0
    assert "3 corrupt log line(s) skipped" in capsys.readouterr().err


def test_tune_on_too_little_data_says_so_and_keeps_the_prior(
        gateway_factory: Callable[..., Gateway], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gw = gateway_factory(settings={"decision_log": str(tmp_path / "d.jsonl")})
    ids = _traffic(gw, 6)
    httpx.post(f"{gw.url}/v1/feedback", json={"request_id": ids[0], "score": 0.1})
    log = _log(gw)
    live = tmp_path / "default.yaml"
    shutil.copy(PACKAGED_POLICY, live)  # the packaged file, with its comments
    out = tmp_path / "candidate.yaml"
    assert main(["tune", "--log", str(log), "--policy", str(live), "--out", str(out),
                 "--report", str(tmp_path / "report")]) == 0
    err = capsys.readouterr().err
    assert "too little data" in err and "priors are kept" in err
    before, after = yaml.safe_load(live.read_text()), yaml.safe_load(out.read_text())
    assert after["quality"] == before["quality"] and after["tasks"] == before["tasks"]
    assert "# Self-hosted is not free" in out.read_text()  # comments kept (round-trip YAML)
    assert "Too little data" in (tmp_path / "report" / "report.md").read_text()
    assert main(["check-policy", str(out)]) == 0


def test_check_policy_accepts_a_tuned_candidate_and_the_diff_names_what_moved(tmp_path: Path) -> None:
    from router.tuning.quality import CellQuality, Evidence, QualityModel
    from router.tuning.tune import TuneResult, write_candidate

    model = QualityModel()
    model.cells[("coding", "kimi:instant")] = CellQuality("coding", "kimi:instant", 0.7, Evidence(), 0.412, 0.02, True)
    result = TuneResult(model, min_quality={"coding": 0.81}, estimates={"simple": {"output_tokens": 55}},
                        confidence_floor=0.2)
    out = tmp_path / "candidate.yaml"
    diff = write_candidate(PACKAGED_POLICY, out, result)
    moved = [line for line in diff.splitlines() if line.startswith("+  coding:       {kimi:thinking: 0.77,")]
    assert len(moved) == 1 and "kimi:instant: 0.412," in moved[0]  # alignment kept too
    assert "confidence_floor: 0.2" in diff and "min_quality: 0.81" in diff
    text = out.read_text()
    assert text.count("\n") == PACKAGED_POLICY.read_text().count("\n")
    assert main(["check-policy", str(out)]) == 0
    assert Path(f"{out}.diff").read_text() == diff


def test_demo_judge_reads_the_latent_quality(tmp_path: Path, classifier: Any) -> None:
    import openai

    from router.demo import DemoUpstreams
    from router.demo.quality import DemoQuality, read_marker

    truth = tmp_path / "truth.yaml"
    truth.write_text("judge_noise: 0.0\nquality:\n  simple: {gpt:default: 0.3, gpt-mini:default: 0.9}\n")
    def task_type_of(prompt: str) -> str:
        return str(classifier.classify([{"role": "user", "content": prompt}]).task_type)

    with DemoUpstreams(quality=DemoQuality.load(truth, task_type_of=task_type_of)) as demo:
        client = openai.OpenAI(base_url=demo.base_url("gpt"), api_key="x")
        latent = {}
        for model in ("gpt-5.2", "gpt-5-mini"):
            text = client.chat.completions.create(model=model, messages=[
                {"role": "user", "content": "What is the capital of Peru?"}]).choices[0].message.content or ""
            latent[model] = read_marker(text)
        assert latent["gpt-5.2"] is not None and latent["gpt-5-mini"] is not None
        assert latent["gpt-5.2"] < latent["gpt-5-mini"]  # 0.3 vs 0.9 means, noise sd 0.1
        verdict = client.chat.completions.create(model="demo-judge", messages=[
            {"role": "user", "content": f"grade this: blah [demo-quality {latent['gpt-5.2']:.3f}]"}])
        assert orjson.loads(verdict.choices[0].message.content or "") == {"score": latent["gpt-5.2"]}


def test_no_secret_reaches_the_decision_log(gateway_factory: Callable[..., Gateway], tmp_path: Path) -> None:
    gw = gateway_factory(settings={"decision_log": str(tmp_path / "d.jsonl"), "client_keys": "sk-client-secret-1"})
    raw = gw.client(api_key="sk-client-secret-1").chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": PROMPTS[0]}])
    httpx.post(f"{gw.url}/v1/feedback", headers={"authorization": "Bearer sk-client-secret-1"},
               json={"request_id": raw.headers["x-router-request-id"], "score": 1})
    text = _log(gw).read_text()
    assert "sk-client-secret-1" not in text and "demo-key" not in text
    assert PROMPTS[0] not in text  # prompts only with ROUTER_LOG_PROMPTS=true


def test_eval_stops_at_max_cost_and_resumes(gateway_factory: Callable[..., Gateway], classifier: Any,
                                            tmp_path: Path) -> None:
    import asyncio

    from router.demo import DemoUpstreams
    from router.demo.quality import DemoQuality
    from router.tuning import evaluate

    truth = DemoQuality({"simple": {"kimi:instant": 0.9, "gpt:default": 0.5}},
                        task_type_of=lambda p: str(classifier.classify([{"role": "user", "content": p}]).task_type))
    demo = DemoUpstreams(quality=truth).start()
    gateway = gateway_factory(demo=demo)
    gateway.extra_stops.append(demo.stop)

    prompts = [evaluate.EvalPrompt(f"p{i}", "simple", [{"role": "user", "content": f"{PROMPTS[0]} ({i})"}])
               for i in range(6)]
    out = tmp_path / "eval.jsonl"
    judge = demo.base_url("gpt")
    # $0.0003 pays for a few kimi:instant answers (~$0.00008 each), not for six.
    first = asyncio.run(evaluate.run_eval(prompts, ["kimi:instant"], gateway=gateway.url, judge="demo-judge",
                                          out=out, max_cost=0.0003, per_call=0.001, concurrency=1,
                                          judge_base_url=judge, progress=False))
    spent = sum(r.get("cost_usd") or 0 for r in evaluate.read_rows(out))
    scored = [r for r in first.rows if r["score"] is not None]
    assert first.stopped_for_budget > 0 and scored and spent <= 0.0003
    second = asyncio.run(evaluate.run_eval(prompts, ["kimi:instant"], gateway=gateway.url, judge="demo-judge",
                                           out=out, max_cost=1.0, concurrency=2, judge_base_url=judge,
                                           progress=False))
    assert second.skipped_done == len(scored) and second.stopped_for_budget == 0
    assert {r["prompt_id"] for r in evaluate.read_rows(out) if r["score"] is not None} == {p.prompt_id for p in prompts}
    table = evaluate.bootstrap_table([{"task_type": "simple", "route": "r", "score": s}
                                      for s in (0.2, 0.4, 0.6, 0.8)])
    (_, _, n, mean, low, high), = table
    assert n == 4 and mean == pytest.approx(0.5) and 0.2 <= low < 0.5 < high <= 0.8
