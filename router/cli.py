"""``model-router`` command line: serve, classify, route, train, check-policy, eval, tune, replay, keys."""

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
    from router.server import ConnectionLimits, GatewayServer, guarded_protocol, tune_collector
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
    tune_collector()
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


def _keys(args: argparse.Namespace) -> int:
    """Thin: the logic is router.tenants.manage (issue 14)."""
    from router.tenants import manage

    path = Path(args.file)
    if args.action == "create":
        made = manage.create_key(path, args.tenant, name=args.name, rpm=args.rpm, tpm=args.tpm,
                                 daily_budget_usd=args.daily_budget_usd, monthly_budget_usd=args.monthly_budget_usd)
        print(f"created key {made.key_id} for tenant {made.tenant}; it is shown once, store it now:")
        print(made.key)
    elif args.action == "rotate":
        made = manage.rotate_key(path, args.key_id, keep_old=args.keep_old)
        print(f"created key {made.key_id} for tenant {made.tenant}"
              f"{'' if args.keep_old else f'; {args.key_id} is revoked'}; it is shown once, store it now:")
        print(made.key)
    elif args.action == "revoke":
        tenant = manage.revoke_key(path, args.key_id)
        print(f"revoked key {args.key_id} of tenant {tenant}")
    else:
        rows = manage.list_keys(path)
        if args.json:
            import orjson

            print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        else:
            print(f"{'tenant':20} {'key id':22} {'name':16} {'created':21} revoked")
            for row in rows:
                print(f"{row['tenant']:20} {row['id']:22} {row['name'] or '-':16} {row['created_at'] or '-':21} "
                      f"{row['revoked_at'] or '-'}")
    return 0


def _add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage client keys and tenants in a tenants file")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="new key (and tenant, if new); prints the key on the last line")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", help="a label for the key (e.g. ci, laptop)")
    create.add_argument("--rpm", type=int, help="tenant: requests per minute")
    create.add_argument("--tpm", type=int, help="tenant: tokens per minute")
    create.add_argument("--daily-budget-usd", type=float, help="tenant: spend budget per UTC day")
    create.add_argument("--monthly-budget-usd", type=float, help="tenant: spend budget per month")
    listing = actions.add_parser("list", help="keys by tenant (ids, never hashes)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a key (refused within one reload interval)")
    revoke.add_argument("key_id")
    rotate = actions.add_parser("rotate", help="replace a key by a new one with its name and limits")
    rotate.add_argument("key_id")
    rotate.add_argument("--keep-old", action="store_true", help="leave the old key valid (revoke it later)")
    for action in (create, listing, revoke, rotate):
        action.add_argument("--file", required=True, help="the tenants file (YAML)")
    keys.set_defaults(func=_keys)


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
    _add_keys_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from router.classifier import ClassifierArtifactError
    from router.policy.loader import PolicyError
    from router.tenants.store import TenantsError

    try:
        result: int = args.func(args)
    except (PolicyError, ClassifierArtifactError, TenantsError) as exc:
        print(f"model-router: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
