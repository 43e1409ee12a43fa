"""The import layers of ``router``, bottom first: a module may import its own layer and lower ones only.

``tests/test_layers.py`` fails on any upward import (``TYPE_CHECKING`` imports included) and on a
module that belongs to no layer. ``python -m router.layers`` prints the layers and which layers
each one actually imports (``--modules`` lists the modules too).

A module belongs to the layer of its longest matching prefix below, so a package can sit in one
layer while one of its modules sits higher (``router.engine.explain`` reads a routed request).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    provides: str
    prefixes: tuple[str, ...]


LAYERS: tuple[Layer, ...] = (
    Layer("demo", "simulated upstreams, standalone (no gateway code)", ("router.demo",)),
    Layer("foundation", "closed sets, settings, the error tree, OpenAI request validation, auth, SSE framing",
          ("router", "router.taxonomy", "router.settings", "router.errors", "router.protocol", "router.auth",
           "router.sse", "router.tenancy", "router.feedback")),
    Layer("policy", "the policy data model, loader, schema and store; what each backend's upstream accepts",
          ("router.policy", "router.dispatch.dialects")),
    Layer("decision", "classifier, request facts, estimates, decide(), live state, circuits",
          ("router.classifier", "router.engine")),
    Layer("upstream", "talking to one upstream: errors, usage, cost, relay, litellm, modes",
          ("router.dispatch.upstream", "router.dispatch.relay", "router.dispatch.translated",
           "router.dispatch.modes", "router.dispatch.anthropic",
           "router.dispatch.http1")),  # issue 16: the relay's HTTP/1.1 client
    Layer("observability", "metrics and tracing", ("router.observability",)),
    Layer("tenants", "tenants file, hashed keys, per-key limits, shared counters (in-process, Redis), enforcer",
          ("router.tenants",)),
    Layer("dispatch", "attempts, retries, fallbacks over a chain of routes", ("router.dispatch",)),
    Layer("exchange", "the internal request/answer model (Routed, Answer, AnswerStream)", ("router.exchange",)),
    Layer("records", "views of a routed request: the explained decision, the access-log line, the decision "
          "record (+ its recorder and the shadow policy deciding on it)",
          ("router.engine.explain", "router.observability.access_log", "router.tuning.record",
           "router.tuning.recorder", "router.tuning.shadow")),
    Layer("swarm", "plan, fan out, aggregate", ("router.swarm",)),
    Layer("pipeline", "prepare → carry out → account, callable without HTTP",
          ("router.pipeline", "router.tenants.gate")),
    Layer("services", "the long-lived objects of one process", ("router.services",)),
    Layer("doors", "one adapter per client protocol: parse into the internal model, render back",
          ("router.doors",)),
    Layer("http", "the ASGI front door, FastAPI handlers, the app", ("router.api", "router.app")),
    Layer("tuning", "offline: decision logs over DuckDB, eval, tune, replay, report", ("router.tuning",)),
    Layer("cli", "the command line", ("router.cli", "router.__main__", "router.layers")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for index, layer in enumerate(LAYERS):
        for prefix in layer.prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The ``router`` modules ``path`` imports (anywhere in it, ``TYPE_CHECKING`` blocks included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "router")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "router":
            for alias in node.names:  # ``from router import errors`` imports the module router.errors
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(path, known) for name, path in modules.items()}


def upward_imports() -> list[str]:
    """Every import from a lower layer to a higher one, and every module without a layer."""
    problems = []
    for module, deps in sorted(graph().items()):
        own = layer_of(module)
        if own is None:
            problems.append(f"{module}: in no layer (add it to router.layers.LAYERS)")
            continue
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if theirs is not None and theirs > own:
                problems.append(f"{module} ({LAYERS[own].name}) imports {dep} ({LAYERS[theirs].name})")
    return problems


def main(argv: list[str]) -> int:
    edges = graph()
    show_modules = "--modules" in argv
    for index in range(len(LAYERS) - 1, -1, -1):
        layer = LAYERS[index]
        members = sorted(m for m in edges if layer_of(m) == index)
        uses = sorted({LAYERS[i].name for m in members for d in edges[m]
                       if (i := layer_of(d)) is not None and i != index},
                      key=lambda name: -[x.name for x in LAYERS].index(name))
        print(f"{index:>2} {layer.name:<13} {layer.provides}")
        print(f"   {'':<13} imports: {', '.join(uses) or '-'}")
        if show_modules:
            print(f"   {'':<13} modules: {', '.join(members)}")
    problems = upward_imports()
    for problem in problems:
        print("UPWARD:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
