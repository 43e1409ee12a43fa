"""``model-router`` command line: serve, classify, route, train, check-policy, eval, tune, replay."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from router.settings import PACKAGED_POLICY, Settings

# A placeholder environment for offline dry runs: every packaged backend counts as configured.
_DRY_RUN_ENV = {"KIMI_API_BASE": "http://kimi.invalid/v1", "KIMI_METRICS_URL": "",
                "OPENAI_API_KEY": "dry-run", "ANTHROPIC_API_KEY": "dry-run",
                "MOONSHOT_API_KEY": "dry-run"}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from router.app import create_app

    overrides: dict[str, Any] = {}
    if args.config:
        overrides["policy_file"] = Path(args.config)
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.demo:
        overrides["demo"] = True
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from router.server import ConnectionLimits, GatewayServer, guarded_protocol
    from router.services import Services

    # Built before the server starts, so a bad policy or artifact is one clear message, not a traceback.
    app = create_app(settings, Services.build(settings))
    limits = ConnectionLimits(header_timeout_s=settings.header_timeout_s, body_timeout_s=settings.body_timeout_s,
                              max_connections=settings.max_connections)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, loop="uvloop", http=guarded_protocol(limits),
                            access_log=False, log_level=settings.log_level.lower(),
                            timeout_keep_alive=max(1, round(settings.keep_alive_s)),
                            timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
                            backlog=2048)
    GatewayServer(config, app.drain).run()  # type: ignore[attr-defined]
    return 0


def _check_policy(args: argparse.Namespace) -> int:
    from router.policy.loader import PolicyError, load_policy_file

    try:
        loaded = load_policy_file(Path(args.file))
    except PolicyError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    policy = loaded.policy
    print(f"{args.file}: ok — policy '{policy.name}' version {policy.version}, "
          f"{len(policy.backends)} backends, {len(policy.routes)} routes enabled")
    for name, why in sorted(loaded.disabled.items()):
        print(f"  note: backend {name} is disabled here: {why}")
    return 0


def _route(args: argparse.Namespace) -> int:
    import orjson

    from router import errors
    from router.classifier import TaskClassifier
    from router.engine.explain import explain_decision, format_table
    from router.engine.live import LiveState
    from router.pipeline import Pipeline
    from router.policy.loader import PolicyError, load_policy_file

    env = {**_DRY_RUN_ENV, **os.environ} if not args.live_env else dict(os.environ)
    try:
        loaded = load_policy_file(Path(args.config or PACKAGED_POLICY), env=env)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1

    class _Fixed:
        current = loaded

    from router.observability.metrics import RouterMetrics
    from router.observability.tracing import Tracer

    pipeline = Pipeline(policies=_Fixed(), classifier=TaskClassifier.load(), live=LiveState(loaded.policy),
                        dispatcher=None, metrics=RouterMetrics(), tracer=Tracer(None),  # type: ignore[arg-type]
                        access_log=None)  # type: ignore[arg-type]
    body: dict[str, Any] = {"model": args.model, "messages": [{"role": "user", "content": args.prompt}]}
    controls: dict[str, Any] = {}
    if args.max_cost is not None:
        controls["max_cost_usd"] = args.max_cost
    if args.latency_budget is not None:
        controls["latency_budget_ms"] = args.latency_budget
    if controls:
        body["router"] = controls
    try:
        routed = pipeline.prepare(body, {}, dry_run=True)
    except errors.RouterError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    explained = explain_decision(routed)
    print(orjson.dumps(explained, option=orjson.OPT_INDENT_2).decode() if args.json else format_table(explained))
    return 0 if explained["feasible"] else 3


def _classify(args: argparse.Namespace) -> int:
    from router.classifier.commands import classify_command

    return classify_command(args.input, args.output)


def _train(args: argparse.Namespace) -> int:
    from router.classifier.commands import train_command

    return train_command(args.data, args.output_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="policy file (default: the packaged policies/default.yaml)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--demo", action="store_true", help="start the built-in simulated upstreams")
    serve.set_defaults(func=_serve)

    classify = sub.add_parser("classify", help="label JSONL prompts with task types")
    classify.add_argument("--input", help="JSONL file (default: stdin)")
    classify.add_argument("--output", help="JSONL file (default: stdout)")
    classify.set_defaults(func=_classify)

    route = sub.add_parser("route", help="dry-run the routing decision for a prompt")
    route.add_argument("prompt")
    route.add_argument("--config", help="policy file")
    route.add_argument("--model", default="auto", help="auto, auto:<mode> or a route")
    route.add_argument("--max-cost", type=float, help="ceiling in USD")
    route.add_argument("--latency-budget", type=float, help="budget in ms")
    route.add_argument("--json", action="store_true", help="print the decision as JSON")
    route.add_argument("--live-env", action="store_true",
                       help="enable only the backends configured in this environment")
    route.set_defaults(func=_route)

    train = sub.add_parser("train", help="rebuild the classifier artifact and its card")
    train.add_argument("--data", help="public training data (default: ../shared/datasets/routing-train.jsonl)")
    train.add_argument("--output-dir", help="where to write the artifact (default: classifiers/model)")
    train.set_defaults(func=_train)

    check = sub.add_parser("check-policy", help="validate a policy file")
    check.add_argument("file")
    check.set_defaults(func=_check_policy)

    from router.tuning.commands import add_commands  # eval, tune, replay (the tuning loop)

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from router.classifier import ClassifierArtifactError
    from router.policy.loader import PolicyError

    try:
        result: int = args.func(args)
    except (PolicyError, ClassifierArtifactError) as exc:
        print(f"model-router: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
