"""Read a policy file: ``${VAR:-default}`` interpolation, validation with paths, backend enabling.

Every problem is collected (not just the first) and named by its path and the fix, e.g.
``tasks.coding.candidates[1]: route 'kimi2:thinking' names backend 'kimi2', which is not defined
(defined: claude, gpt, kimi)``.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from router import taxonomy
from router.policy.model import Policy

log = logging.getLogger("router.policy")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class PolicyError(Exception):
    """A policy that cannot be used; ``problems`` lists every issue with its path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"policy {source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


class BackendKeys:
    """Provider keys by backend name. Kept apart from the policy so no dump or log can show them."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = dict(keys)

    def get(self, backend: str) -> str:
        return self._keys.get(backend, "")

    def values(self) -> list[str]:
        return [k for k in self._keys.values() if k]

    def __repr__(self) -> str:
        return f"BackendKeys({sorted(self._keys)})"


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    keys: BackendKeys
    disabled: dict[str, str] = field(default_factory=dict)  # backend -> why
    source: str = "<memory>"
    digest: str = ""


def interpolate(value: Any, env: Mapping[str, str], path: str = "", problems: list[str] | None = None,
                used: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a YAML tree; ``used`` collects the
    environment values put in (so no problem message can quote one)."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                if used is not None:
                    used[name] = env[name]
                return env[name]
            if default is not None:
                return default
            if problems is not None:
                problems.append(f"{path or '<root>'}: ${{{name}}} is not set "
                                f"(set it, or write ${{{name}:-default}})")
            return ""
        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k), problems, used) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", problems, used) for i, v in enumerate(value)]
    return value


# Values this short are flags and names (``vllm``, ``1.0``), not secrets; hiding them would only
# garble the messages.
_MIN_SECRET_LEN = 6


def _redacted(problems: list[str], used: Mapping[str, str]) -> list[str]:
    """``problems`` with every interpolated environment value replaced by the variable's name: a
    policy error is logged, and ``max_concurrency: ${OPENAI_API_KEY}`` must not print the key."""
    values = sorted(((v, n) for n, v in used.items() if len(v) >= _MIN_SECRET_LEN), key=lambda vn: -len(vn[0]))
    out = []
    for problem in problems:
        for value, name in values:
            if value in problem:
                problem = problem.replace(value, f"<${{{name}}}>")
        out.append(problem)
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The policy model class that the mapping at ``loc`` is validated against, if any."""
    node: Any = Policy
    expect_key = False
    for part in loc:
        if expect_key:
            expect_key = False
            continue
        if not (isinstance(node, type) and issubclass(node, BaseModel)) or part not in node.model_fields:
            return None
        node = node.model_fields[str(part)].annotation
        if typing.get_origin(node) is dict:
            node, expect_key = typing.get_args(node)[1], True
    return node if isinstance(node, type) and issubclass(node, BaseModel) and not expect_key else None


def _schema_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(err["loc"][:-1])
            known = sorted(model.model_fields) if model is not None else []
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            msg = "unknown key" + (f"; did you mean '{close[0]}'?" if close else "") + (
                f" (known here: {', '.join(known)})" if known else " (see router/policy/schema.json)")
        elif kind == "missing":
            msg = "required key is missing; add it (see router/policy/schema.json)"
        elif "input" in err and not isinstance(err["input"], dict | list):
            msg += f"; got {err['input']!r}"
        problems.append(f"{loc or '<root>'}: {msg}")
    return problems


def _route_problem(route: str, policy: Policy | Mapping[str, tuple[str, ...]], where: str, *,
                   allow_swarm: bool = True) -> str | None:
    """What is wrong with ``route``; ``policy`` may also be a plain backend -> modes mapping."""
    if route == taxonomy.SWARM_ROUTE and allow_swarm:
        return None
    backend, sep, mode = route.partition(":")
    if not sep:
        return f"{where}: '{route}' is not a route; write backend:mode, e.g. 'kimi:instant' or 'gpt:default'"
    backends = {n: b.modes for n, b in policy.backends.items()} if isinstance(policy, Policy) else policy
    if backend not in backends:
        defined = ", ".join(sorted(backends))
        return f"{where}: route '{route}' names backend '{backend}', which is not defined (defined: {defined})"
    modes = backends[backend]
    if mode not in modes:
        return f"{where}: backend '{backend}' has no mode '{mode}' (its modes: {', '.join(modes)})"
    return None


def semantic_problems(policy: Policy) -> list[str]:
    """Cross-references the schema cannot express."""
    problems: list[str] = []
    for task, rule in policy.tasks.items():
        if task not in taxonomy.TASK_TYPES:
            problems.append(f"tasks.{task}: unknown task type (known: {', '.join(taxonomy.TASK_TYPES)})")
        for i, route in enumerate(rule.candidates):
            if (p := _route_problem(route, policy, f"tasks.{task}.candidates[{i}]")) is not None:
                problems.append(p)
        seen = [r for i, r in enumerate(rule.candidates) if r in rule.candidates[:i]]
        if seen:
            problems.append(f"tasks.{task}.candidates: {', '.join(sorted(set(seen)))} listed twice (keep one)")
        priors = policy.quality.get(task, {})
        for route in rule.candidates:
            if route not in priors and _route_problem(route, policy, "") is None:
                problems.append(f"quality.{task}: no prior for candidate '{route}' (add quality.{task}.{route}: "
                                f"a score in [0, 1], and name its source in quality_sources.{task})")
    missing = [t for t in taxonomy.TASK_TYPES if t not in policy.tasks]
    if missing:
        problems.append(f"tasks: no candidates for {', '.join(missing)} (add a tasks.<type>.candidates list)")
    for task, priors in policy.quality.items():
        if task not in taxonomy.TASK_TYPES:
            problems.append(f"quality.{task}: unknown task type")
        for route, q in priors.items():
            if (p := _route_problem(route, policy, f"quality.{task}.{route}")) is not None:
                problems.append(p)
            if not 0 <= q <= 1:
                problems.append(f"quality.{task}.{route}: {q} is outside [0, 1]")
    for task in policy.quality:
        if task in taxonomy.TASK_TYPES and not policy.quality_sources.get(task):
            problems.append(f"quality_sources.{task}: the priors of quality.{task} name no source "
                            f"(add the benchmark and where its scores come from)")
    if policy.retry.backoff_base_ms > policy.retry.backoff_max_ms:
        problems.append(f"retry.backoff_base_ms: {policy.retry.backoff_base_ms:g} > retry.backoff_max_ms "
                        f"{policy.retry.backoff_max_ms:g} (raise backoff_max_ms or lower the base)")
    for task in policy.estimates:
        if task not in taxonomy.TASK_TYPES:
            problems.append(f"estimates.{task}: unknown task type")
    for alias, route in policy.aliases.items():
        if (p := _route_problem(route, policy, f"aliases.{alias}")) is not None:
            problems.append(p)
    for role in ("planner", "worker", "aggregator"):
        route = getattr(policy.swarm, role)
        if (p := _route_problem(route, policy, f"swarm.{role}", allow_swarm=False)) is not None:
            problems.append(p)
    if policy.classifier.cascade is not None and (p := _route_problem(  # hook (issue 17): the cascade's route
            policy.classifier.cascade.route, policy, "classifier.cascade.route", allow_swarm=False)) is not None:
        problems.append(p)
    if policy.classifier.fallback_task_type not in taxonomy.TASK_TYPES:
        problems.append(f"classifier.fallback_task_type: '{policy.classifier.fallback_task_type}' is not a "
                        f"task type (known: {', '.join(taxonomy.TASK_TYPES)})")
    for name, backend in policy.backends.items():
        if backend.flavour == "moonshot" and backend.provider != "openai_compatible":
            problems.append(f"backends.{name}.flavour: 'moonshot' needs provider 'openai_compatible'")
        problems.extend(_dialect_problems(name, backend))
    return problems


def _dialect_problems(name: str, backend: Any) -> list[str]:
    """What the upstream's API (router/dispatch/dialects.py) rules out for this backend."""
    from router.dispatch.dialects import serves_video

    problems = []
    if "video" in backend.modalities and not serves_video(backend):
        problems.append(f"backends.{name}.modalities: this upstream does not serve video input (Kimi K2.5 takes "
                        f"video through Moonshot's API only, flavour 'moonshot'); remove 'video'")
    if backend.flavour == "moonshot":
        if not backend.requires_key:
            problems.append(f"backends.{name}.requires_key: Moonshot's API needs a key; set it to true")
        if backend.pricing.input_per_mtok is None or backend.pricing.output_per_mtok is None:
            problems.append(f"backends.{name}.pricing: Moonshot bills per token; give input_per_mtok, "
                            f"cached_input_per_mtok and output_per_mtok (kimi-k2.5: 0.60 / 0.10 / 3.00)")
    return problems


def _raw_route_problems(raw: dict[str, Any]) -> list[str]:
    """Route cross-references checked on the raw mapping, so a file with schema errors still gets
    every problem reported at once (the full semantic check needs a valid model)."""
    backends: dict[str, tuple[str, ...]] = {}
    for name, backend in (raw.get("backends") or {}).items() if isinstance(raw.get("backends"), dict) else ():
        modes = backend.get("modes", ["default"]) if isinstance(backend, dict) else ["default"]
        backends[str(name)] = tuple(str(m) for m in modes) if isinstance(modes, list) else ("default",)
    problems: list[str] = []
    tasks = raw.get("tasks")
    for task, rule in tasks.items() if isinstance(tasks, dict) else ():
        candidates = rule.get("candidates") if isinstance(rule, dict) else None
        for i, route in enumerate(candidates if isinstance(candidates, list) else ()):
            if isinstance(route, str) and (p := _route_problem(route, backends, f"tasks.{task}.candidates[{i}]")):
                problems.append(p)
    aliases = raw.get("aliases")
    for alias, route in aliases.items() if isinstance(aliases, dict) else ():
        if isinstance(route, str) and (p := _route_problem(route, backends, f"aliases.{alias}")):
            problems.append(p)
    return problems


def _enable_backends(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Disable (in ``raw``) each backend whose URL or key is missing; return (keys, disabled)."""
    keys: dict[str, str] = {}
    disabled: dict[str, str] = {}
    for name, backend in (raw.get("backends") or {}).items():
        if not isinstance(backend, dict):
            continue
        key_env = backend.get("api_key_env")
        key = env.get(key_env, "") if isinstance(key_env, str) else ""
        if backend.get("enabled") is False:
            disabled[name] = "disabled in the policy"
        elif not backend.get("api_base"):
            disabled[name] = "no api_base (set its URL variable)"
        elif backend.get("requires_key", True) and not key:
            disabled[name] = f"no key ({key_env or 'api_key_env'} is not set)"
        if name in disabled:
            backend["enabled"] = False
        keys[name] = key
    return keys, disabled


def load_policy_text(text: str, *, source: str = "<memory>", env: Mapping[str, str] | None = None) -> LoadedPolicy:
    env = os.environ if env is None else env
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"<root>: not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise PolicyError(source, ["<root>: a policy is a YAML mapping with backends, tasks, ..."])
    problems: list[str] = []
    used: dict[str, str] = {}
    raw = interpolate(raw, env, problems=problems, used=used)
    keys, disabled = _enable_backends(raw, env)
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(source, _redacted(problems + _schema_problems(exc) + _raw_route_problems(raw),
                                            used)) from None
    problems += semantic_problems(policy)
    if problems:
        raise PolicyError(source, _redacted(problems, used))
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return LoadedPolicy(policy=policy, keys=BackendKeys(keys), disabled=disabled, source=source, digest=digest)


def load_policy_file(path: Path, *, env: Mapping[str, str] | None = None) -> LoadedPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [f"<file>: cannot read it: {exc.strerror}"]) from None
    return load_policy_text(text, source=str(path), env=env)


def log_disabled(loaded: LoadedPolicy) -> None:
    for name, why in sorted(loaded.disabled.items()):
        log.warning("backend %s disabled: %s", name, why)
