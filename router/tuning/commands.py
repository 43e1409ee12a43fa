"""``model-router eval | tune | replay``: argument handling and output; the work is in the modules."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from router.policy.loader import LoadedPolicy, load_policy_file

# Replay and tune read policies offline: every packaged backend counts as configured.
_OFFLINE_ENV = {"KIMI_API_BASE": "http://kimi.invalid/v1", "KIMI_METRICS_URL": "",
                "OPENAI_API_KEY": "offline", "ANTHROPIC_API_KEY": "offline"}


def _load(path: str) -> LoadedPolicy:
    return load_policy_file(Path(path), env={**_OFFLINE_ENV, **os.environ})


def _open(args: argparse.Namespace) -> Any:
    from router.tuning.logs import count_records, open_logs

    con = open_logs(args.log, memory_limit=args.memory_limit)
    counts = count_records(con)
    if counts.corrupt:
        print(f"note: {counts.corrupt} corrupt log line(s) skipped (of {counts.lines})", file=sys.stderr)
    return con, counts


def add_commands(sub: Any) -> None:
    ev = sub.add_parser("eval", help="measure answer quality per (task type, route) with a judge model")
    ev.add_argument("--prompts", nargs="+", help="JSONL files: messages or prompt/text, and task_type or label")
    ev.add_argument("--log", nargs="*", default=[], help="or: decision logs written with ROUTER_LOG_PROMPTS=true")
    ev.add_argument("--sample", type=int, help="evaluate a random sample of this many prompts")
    ev.add_argument("--routes", required=True, help="comma-separated routes to answer each prompt")
    ev.add_argument("--judge", required=True, help="the judging model (a gateway route/alias, or see --judge-base-url)")
    ev.add_argument("--judge-base-url", help="an OpenAI-compatible /v1 URL for the judge (default: the gateway; "
                    "with the demo, the demo OpenAI server when the gateway does not know the judge)")
    ev.add_argument("--gateway", default="http://127.0.0.1:8080")
    ev.add_argument("--api-key", default=os.environ.get("ROUTER_API_KEY", "unused"))
    ev.add_argument("--out", required=True, help="results JSONL (appended; a rerun resumes)")
    ev.add_argument("--max-cost", type=float, required=True, help="hard limit in USD for the whole run")
    ev.add_argument("--max-cost-per-call", type=float, help="ceiling of one call (default: max-cost / concurrency)")
    ev.add_argument("--concurrency", type=int, default=8)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--memory-limit", default="1GB")
    ev.set_defaults(func=eval_command)

    tune = sub.add_parser("tune", help="turn logs, feedback and evaluations into a candidate policy and a report")
    tune.add_argument("--log", nargs="+", required=True, help="decision logs: JSONL or Parquet paths/globs")
    tune.add_argument("--eval", nargs="*", default=[], help="model-router eval results (JSONL)")
    tune.add_argument("--policy", default=None, help="the live policy to start from (default: the packaged one)")
    tune.add_argument("--out", required=True, help="candidate policy file to write")
    tune.add_argument("--report", required=True, help="directory for report.md and the plots")
    tune.add_argument("--target", type=float, default=0.95, help="share of the best route's quality to keep")
    tune.add_argument("--prior-strength", type=float, default=10.0)
    tune.add_argument("--min-evidence", type=int, default=30)
    tune.add_argument("--memory-limit", default="1GB")
    tune.set_defaults(func=tune_command)

    rp = sub.add_parser("replay", help="what a candidate policy would have done on logged traffic")
    rp.add_argument("--log", nargs="+", required=True, help="decision logs: JSONL or Parquet paths/globs")
    rp.add_argument("--policy", required=True, help="the candidate policy")
    rp.add_argument("--baseline", help="a baseline policy (default: what the log says the live policy did)")
    rp.add_argument("--eval", nargs="*", default=[], help="model-router eval results, as quality evidence")
    rp.add_argument("--exact", action="store_true", help="decide every request on its logged inputs and signals")
    rp.add_argument("--min-outcomes", type=int, default=30)
    rp.add_argument("--json", action="store_true")
    rp.add_argument("--memory-limit", default="1GB")
    rp.set_defaults(func=replay_command)


def _demo_judge_url(gateway: str, judge: str, api_key: str) -> str | None:
    """The judge's base URL when the gateway does not serve it but runs the demo upstreams."""
    import httpx

    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=10) as http:
        if http.get(f"/v1/models/{judge}").status_code == 200:
            return None
        status = http.get("/v1/router/status")
        demo = status.json().get("demo_upstreams") if status.status_code == 200 else None
        return demo.get("gpt") if isinstance(demo, dict) else None


def eval_command(args: argparse.Namespace) -> int:
    from router.tuning import evaluate

    if args.prompts:
        prompts = [p for path in args.prompts for p in evaluate.load_prompt_file(Path(path))]
    elif args.log:
        con, _ = _open(args)
        prompts = evaluate.prompts_from_log(con, args.sample or 1_000_000, args.seed)
    else:
        print("error: give --prompts FILE or --log PATH (written with ROUTER_LOG_PROMPTS=true)", file=sys.stderr)
        return 2
    prompts = evaluate.sample(prompts, args.sample, args.seed)
    if not prompts:
        print("error: no prompts to evaluate", file=sys.stderr)
        return 2
    judge_url = args.judge_base_url or _demo_judge_url(args.gateway, args.judge, args.api_key)
    run = asyncio.run(evaluate.run_eval(
        prompts, [r.strip() for r in args.routes.split(",") if r.strip()], gateway=args.gateway, judge=args.judge,
        out=Path(args.out), max_cost=args.max_cost, per_call=args.max_cost_per_call, concurrency=args.concurrency,
        api_key=args.api_key, judge_base_url=judge_url))
    rows = evaluate.read_rows(Path(args.out))
    print(evaluate.format_table(evaluate.bootstrap_table(rows)))
    print(f"{len(run.rows)} new result(s), {run.skipped_done} already done, {run.failed} failed"
          + (f", {run.stopped_for_budget} not run: --max-cost reached" if run.stopped_for_budget else ""),
          file=sys.stderr)
    return 0


def tune_command(args: argparse.Namespace) -> int:
    from router.settings import PACKAGED_POLICY
    from router.tuning.replay import replay
    from router.tuning.report import write_report
    from router.tuning.tune import TuneSettings, candidate_policy, fit, write_candidate

    source = Path(args.policy or PACKAGED_POLICY)
    loaded = _load(str(source))
    con, counts = _open(args)
    settings = TuneSettings(target=args.target, prior_strength=args.prior_strength, min_evidence=args.min_evidence)
    result = fit(loaded.policy, con, args.eval, settings)
    out = Path(args.out)
    diff = write_candidate(source, out, result)
    candidate = candidate_policy(loaded, result)
    report = replay(con, candidate, result.quality, live_candidates=loaded.policy)
    report.corrupt = counts.corrupt
    notes = write_report(Path(args.report), prior=loaded.policy, result=result, replay=report, con=con, diff=diff,
                         log_counts=counts, candidate_path=out)
    if not result.enough_data:
        print("tune: too little data — the quality priors are kept; the candidate differs only where the "
              "data were enough (see the report)", file=sys.stderr)
    for note in [*result.notes, *notes]:
        print(f"note: {note}", file=sys.stderr)
    changed = sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    print(f"wrote {out} ({changed} changed line(s); diff in {out}.diff) and {Path(args.report) / 'report.md'}")
    live, cand = report.baseline["*"], report.candidate["*"]
    print(f"replay: live ${live.cost_per_request:.6f}/request quality {live.quality:.3f}; candidate "
          f"${cand.cost_per_request:.6f}/request quality {cand.quality:.3f}; "
          f"always-best {report.best_route_quality['*']:.3f}")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    from router.tuning.quality import fit_quality
    from router.tuning.replay import replay
    from router.tuning.report import replay_table

    candidate = _load(args.policy).policy
    baseline = _load(args.baseline).policy if args.baseline else None
    con, counts = _open(args)
    prior = baseline or candidate
    quality = fit_quality(prior, con, args.eval)
    report = replay(con, candidate, quality, baseline=baseline, exact=args.exact, min_outcomes=args.min_outcomes)
    report.corrupt = counts.corrupt
    if args.json:
        print(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return 0
    print("\n".join(replay_table(report)))
    print(f"\n{report.rows} logged requests ({report.direct} named their route and are left out), "
          f"{report.decisions_computed} decisions computed, "
          f"{counts.corrupt} corrupt lines skipped.")
    sources = [f"{t}: " + ", ".join(f"{r}={s}" for r, s in sorted(routes.items()))
               for t, routes in sorted(report.sources.items())]
    print("cost/latency sources: " + "; ".join(sources))
    if report.same_decision is not None:
        print(f"exact replay: the candidate made the logged decision on {report.same_decision:.1%} of requests")
    return 0
