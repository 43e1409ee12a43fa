"""``model-router tune``: logs + feedback + evaluations -> a candidate policy, a diff and a report.

What changes, each only where the data are enough (else the prior stays, and the report says so):

- ``quality[task][route]``: the posterior of ``router.tuning.quality`` (normal-normal shrinkage);
- ``tasks[task].min_quality``: ``target`` x the best route's posterior for that task type, so the
  objective ``cheapest_meeting_quality`` picks the cheapest route within the target of the best
  (RouteLLM's way: the threshold comes from the data, not a guess);
- ``estimates[task]``: median answer and reasoning tokens, refitted from logged usage;
- ``backends[b].latency``: median TTFT and throughput, refitted from logged streams;
- ``classifier.confidence_floor``: the lowest floor at which the labels the classifier keeps agree
  with users' corrections (``task_type`` in feedback) at least ``label_precision`` of the time.

The candidate is written with the input file's comments and layout kept (round-trip YAML).
"""

from __future__ import annotations

import difflib
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from ruamel.yaml import YAML

from router.engine.decide import ANSWER_LENGTH_FACTOR
from router.policy.loader import LoadedPolicy
from router.policy.model import Policy
from router.tuning.quality import QualityModel, fit_quality

FLOOR_GRID = tuple(round(0.05 * i, 2) for i in range(0, 19))  # 0.00 … 0.90


@dataclass(slots=True)
class TuneSettings:
    target: float = 0.95            # share of the best route's quality the cheapest choice must reach
    prior_strength: float = 10.0    # the prior counts as this many observations
    min_evidence: int = 30          # observations a (task type, route) needs before its quality moves
    min_requests: int = 50          # logged answers a task type needs before its token estimates move
    min_streams: int = 30           # streamed answers a backend needs before its latency priors move
    min_labels: int = 30            # label corrections needed before the confidence floor moves
    label_precision: float = 0.9    # labels kept above the floor must be this often right


@dataclass(slots=True)
class TuneResult:
    quality: QualityModel
    min_quality: dict[str, float] = field(default_factory=dict)
    estimates: dict[str, dict[str, int]] = field(default_factory=dict)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    confidence_floor: float | None = None
    floor_curve: list[tuple[float, float, int]] = field(default_factory=list)  # (floor, precision, n kept)
    notes: list[str] = field(default_factory=list)
    enough_data: bool = True
    decisions: int = 0
    feedback: int = 0


def fit(prior: Policy, con: duckdb.DuckDBPyConnection, eval_paths: Sequence[str] = (),
        settings: TuneSettings | None = None) -> TuneResult:
    cfg = settings or TuneSettings()
    quality = fit_quality(prior, con, eval_paths, prior_strength=cfg.prior_strength, min_evidence=cfg.min_evidence)
    result = TuneResult(quality)
    row = con.execute("SELECT count(*) FROM decisions").fetchone()
    result.decisions = int(row[0]) if row else 0
    row = con.execute("SELECT count(*) FROM feedback").fetchone()
    result.feedback = int(row[0]) if row else 0
    moved = [c for c in quality.cells.values() if c.enough]
    if not moved:
        result.enough_data = False
        result.notes.append(f"too little data: no (task type, route) has {cfg.min_evidence} feedback or evaluation "
                            f"scores yet ({result.decisions} decisions, {result.feedback} feedback); the quality "
                            "priors are kept")
    _fit_min_quality(prior, quality, cfg, result)
    _fit_estimates(prior, con, cfg, result)
    _fit_latency(prior, con, cfg, result)
    _fit_floor(prior, con, cfg, result)
    return result


def _fit_min_quality(prior: Policy, quality: QualityModel, cfg: TuneSettings, result: TuneResult) -> None:
    for task, rule in prior.tasks.items():
        cells = [quality.get(task, r) for r in rule.candidates]
        known = [c for c in cells if c is not None]
        if not any(c.enough for c in known):
            result.notes.append(f"{task}: no route has enough quality evidence; min_quality kept")
            continue
        best = max(c.posterior for c in known)
        result.min_quality[task] = math.floor(cfg.target * best * 1000) / 1000


def _fit_estimates(prior: Policy, con: duckdb.DuckDBPyConnection, cfg: TuneSettings, result: TuneResult) -> None:
    factor = " ".join(f"WHEN '{k}' THEN {v}" for k, v in ANSWER_LENGTH_FACTOR.items())
    rows = con.execute(f"""
        SELECT task_type, count(*),
               median((tokens_out - coalesce(tokens_reasoning, 0)) / (CASE answer_length {factor} ELSE 1.0 END)),
               count(*) FILTER (WHERE tokens_reasoning > 0),
               median(tokens_reasoning) FILTER (WHERE tokens_reasoning > 0)
        FROM decisions
        WHERE status = 'ok' AND route <> 'swarm' AND max_output_tokens IS NULL AND tokens_out > 0
        GROUP BY 1""").fetchall()
    for task, n, answer, n_thinking, reasoning in rows:
        if task not in prior.estimates and task not in prior.tasks:
            continue
        if n < cfg.min_requests:
            result.notes.append(f"{task}: {n} logged answers < {cfg.min_requests}; token estimates kept")
            continue
        old = prior.estimates.get(task)
        new = {"output_tokens": max(1, round(answer))}
        if n_thinking >= cfg.min_requests and reasoning is not None:
            new["reasoning_tokens"] = max(0, round(reasoning))
        elif old is not None:
            new["reasoning_tokens"] = old.reasoning_tokens
        result.estimates[task] = new


def _fit_latency(prior: Policy, con: duckdb.DuckDBPyConnection, cfg: TuneSettings, result: TuneResult) -> None:
    rows = con.execute("""
        SELECT split_part(route, ':', 1) AS backend, count(*), median(ttft_ms),
               median(tokens_out / ((latency_ms - ttft_ms) / 1000.0)) FILTER (WHERE latency_ms > ttft_ms + 1)
        FROM decisions
        WHERE status = 'ok' AND stream AND ttft_ms IS NOT NULL AND tokens_out >= 8 AND route <> 'swarm'
        GROUP BY 1""").fetchall()
    for backend, n, ttft, tps in rows:
        if backend not in prior.backends:
            continue
        if n < cfg.min_streams or ttft is None or tps is None:
            result.notes.append(f"backend {backend}: {n} streamed answers < {cfg.min_streams}; latency priors kept")
            continue
        result.latency[backend] = {"ttft_ms": round(float(ttft), 1), "output_tokens_per_s": round(float(tps), 1)}


def _fit_floor(prior: Policy, con: duckdb.DuckDBPyConnection, cfg: TuneSettings, result: TuneResult) -> None:
    rows = con.execute("""
        SELECT d.top_probability, d.top_task_type = f.corrected_task_type
        FROM decisions d JOIN feedback f USING (request_id)
        WHERE f.corrected_task_type IS NOT NULL AND d.top_task_type IS NOT NULL""").fetchall()
    if len(rows) < cfg.min_labels:
        result.notes.append(f"classifier: {len(rows)} label corrections < {cfg.min_labels}; confidence_floor kept "
                            f"at {prior.classifier.confidence_floor}")
        return
    for floor in FLOOR_GRID:
        kept = [agree for p, agree in rows if p >= floor]
        precision = sum(kept) / len(kept) if kept else math.nan
        result.floor_curve.append((floor, precision, len(kept)))
    for floor, precision, n in result.floor_curve:
        if n >= cfg.min_labels and precision >= cfg.label_precision:
            result.confidence_floor = floor
            return
    result.notes.append(f"classifier: no floor reaches {cfg.label_precision:.0%} label precision with "
                        f"{cfg.min_labels} labels kept; confidence_floor kept")


# --- writing the candidate ----------------------------------------------------------------------
def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _keep_alignment(original: str, written: str) -> str:
    """ruamel drops the padding after ``key:`` in aligned flow mappings; put it back."""
    pads: dict[str, str] = {}
    for line in original.splitlines():
        m = re.match(r"^(\s+)([\w.:-]+):(\s+)\{", line)
        if m:
            pads[m.group(1) + m.group(2)] = m.group(3)
    out = []
    for line in written.splitlines(keepends=True):
        m = re.match(r"^(\s+)([\w.:-]+): \{", line)
        if m and (m.group(1) + m.group(2)) in pads:
            line = f"{m.group(1)}{m.group(2)}:{pads[m.group(1) + m.group(2)]}{{" + line[m.end():]
        out.append(line)
    return "".join(out)


def candidate_text(source_text: str, result: TuneResult, *, version_suffix: str = "tuned") -> str:
    yaml = _yaml()
    doc: Any = yaml.load(source_text)
    quality = doc.setdefault("quality", {})
    for (task, route), cell in sorted(result.quality.cells.items()):
        if not cell.enough:
            continue
        row = quality.get(task)
        if row is None:
            quality[task] = row = {}
        row[route] = round(cell.posterior, 3)
    for task, value in result.min_quality.items():
        if task in doc.get("tasks", {}):
            doc["tasks"][task]["min_quality"] = value
    estimates = doc.setdefault("estimates", {})
    for task, tokens in result.estimates.items():
        if task in estimates:
            for key, count in tokens.items():
                estimates[task][key] = count
        else:
            estimates[task] = tokens
    for backend, timing in result.latency.items():
        node = doc["backends"][backend]
        if "latency" in node:
            for key, value in timing.items():
                node["latency"][key] = value
        else:
            node["latency"] = timing
    if result.confidence_floor is not None:
        doc.setdefault("classifier", {})["confidence_floor"] = result.confidence_floor
    if "version" in doc:
        doc["version"] = f"{doc['version']}-{version_suffix}"
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return _keep_alignment(source_text, buf.getvalue())


def unified_diff(before: str, after: str, before_name: str, after_name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=before_name, tofile=after_name))


def candidate_policy(loaded: LoadedPolicy, result: TuneResult) -> Policy:
    """The tuned values applied to the loaded (interpolated) prior: the policy replay decides with."""
    policy = loaded.policy
    quality = {t: dict(routes) for t, routes in policy.quality.items()}
    for (task, route), cell in result.quality.cells.items():
        if cell.enough:
            quality.setdefault(task, {})[route] = round(cell.posterior, 3)
    tasks = {t: rule.model_copy(update={"min_quality": result.min_quality[t]}) if t in result.min_quality else rule
             for t, rule in policy.tasks.items()}
    estimates = dict(policy.estimates)
    for task, values in result.estimates.items():
        base = estimates.get(task)
        estimates[task] = base.model_copy(update=values) if base is not None else type(
            next(iter(estimates.values())))(**values)
    backends = {}
    for name, backend in policy.backends.items():
        if name in result.latency:
            backend = backend.model_copy(update={"latency": backend.latency.model_copy(update=result.latency[name])})
        backends[name] = backend
    classifier = policy.classifier
    if result.confidence_floor is not None:
        classifier = classifier.model_copy(update={"confidence_floor": result.confidence_floor})
    return policy.model_copy(update={"quality": quality, "tasks": tasks, "estimates": estimates,
                                     "backends": backends, "classifier": classifier})


def write_candidate(source: Path, out: Path, result: TuneResult) -> str:
    """Write the candidate next to its diff (``out`` + ``.diff``); returns the diff."""
    before = source.read_text(encoding="utf-8")
    after = candidate_text(before, result)
    out.write_text(after, encoding="utf-8")
    diff = unified_diff(before, after, str(source), str(out))
    Path(f"{out}.diff").write_text(diff, encoding="utf-8")
    return diff


__all__ = ["TuneResult", "TuneSettings", "candidate_policy", "candidate_text", "fit",
           "unified_diff", "write_candidate"]
