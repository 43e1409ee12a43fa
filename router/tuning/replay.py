"""Counterfactual replay: what a candidate policy would have decided, cost, taken and been worth on
logged traffic, against the live policy (what the log says happened) or another baseline.

Decisions come from the same pure ``decide()`` the gateway runs. Requests whose decision inputs
agree are decided once (grouped in SQL, not a Python loop per row): by default the inputs are the
logged facts with prompt sizes rounded to 2 significant digits, the limits, the label (re-applying
the candidate's confidence floor to the classifier's top probability) and the
candidate's own latency priors (circuits closed, no load) — the steady state. ``exact=True`` decides
every request on its logged inputs including the live signals it saw: replaying the live policy
that way reproduces the logged decisions.

Outcomes: a (task type, route) cell with at least ``min_outcomes`` logged answers takes its cost
per request and latency distribution from them ("logged"); otherwise the policy's estimates are used
("estimated"). Quality comes from ``QualityModel`` (feedback with inverse-propensity weights, and
evaluations), with a 95 % interval; a self-normalised IPS estimate on requests with feedback whose
logged route matches the candidate's is reported next to it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import orjson

from router.engine.decide import Label, Limits, decide
from router.engine.request_facts import RequestFacts
from router.engine.signals import PriorSignals
from router.policy.model import Policy
from router.tuning.quality import DEFAULT_PRIOR, QualityModel
from router.tuning.record import RecordedSignals, label_under

LATENCY_SAMPLES_PER_CELL = 400
# Requests the policy decided (model=auto or auto:<mode>); a client that named a route (e.g. the
# requests of `model-router eval`) gets that route under any policy, so it is left out of the
# comparison (its outcomes still inform the (task type, route) cells).
ROUTED = "direct_route IS NULL"


def _sig2(col: str) -> str:
    """``col`` rounded to 2 significant digits (small values kept)."""
    return f"(CASE WHEN {col} < 100 THEN {col} ELSE CAST(round({col}, 1 - CAST(floor(log10({col})) AS INTEGER)) " \
           f"AS BIGINT) END)"


_GROUP_COLUMNS = {
    "task_type": "task_type",
    "top_task_type": "top_task_type",
    "top_probability": "(top_probability >= {floor})",  # all a floor comparison needs: one bit
    "answer_length": "answer_length", "subtasks": "subtasks",
    "images": "images", "videos": "videos", "has_tools": "has_tools", "max_output_tokens": "max_output_tokens",
    "text_chars": _sig2("text_chars"), "text_bytes": _sig2("text_bytes"),
    "max_cost_usd": "max_cost_usd", "latency_budget_ms": "latency_budget_ms",
    "forced_mode": "forced_mode", "direct_route": "direct_route",
}
_EXACT_COLUMNS = {**{k: k for k in _GROUP_COLUMNS}, "rule": "rule", "probabilities": "probabilities",
                  "signals": "signals", "explore_draw": "explore_draw"}


@dataclass(slots=True)
class PolicyResult:
    name: str
    requests: int = 0
    infeasible: int = 0
    shares: dict[str, float] = field(default_factory=dict)
    cost_total: float = 0.0
    latency_p50_ms: float = math.nan
    latency_p95_ms: float = math.nan
    quality: float = math.nan
    quality_low: float = math.nan
    quality_high: float = math.nan
    ips_quality: float | None = None
    ips_matched: int = 0

    @property
    def cost_per_request(self) -> float:
        answered = self.requests - self.infeasible
        return self.cost_total / answered if answered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "infeasible": self.infeasible,
                "shares": {k: round(v, 4) for k, v in sorted(self.shares.items())},
                "cost_total_usd": round(self.cost_total, 6), "cost_per_request_usd": round(self.cost_per_request, 8),
                "latency_p50_ms": round(self.latency_p50_ms, 1), "latency_p95_ms": round(self.latency_p95_ms, 1),
                "quality": round(self.quality, 4), "quality_interval": [round(self.quality_low, 4),
                                                                       round(self.quality_high, 4)],
                "ips_quality": None if self.ips_quality is None else round(self.ips_quality, 4),
                "ips_matched_requests": self.ips_matched}


@dataclass(slots=True)
class ReplayReport:
    baseline: dict[str, PolicyResult]   # task type -> result; "*" = overall
    candidate: dict[str, PolicyResult]
    best_route_quality: dict[str, float]  # always the best route (by the quality model), per task type and "*"
    sources: dict[str, dict[str, str]]  # task type -> route -> logged | estimated
    decisions_computed: int = 0
    rows: int = 0
    direct: int = 0  # requests that named their route: not replayed
    corrupt: int = 0
    same_decision: float | None = None  # exact replay: share of requests where the candidate = logged choice

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "direct_route_requests_left_out": self.direct,
                "corrupt_lines_skipped": self.corrupt,
                "decisions_computed": self.decisions_computed, "same_decision_share": self.same_decision,
                "best_route_quality": {k: round(v, 4) for k, v in self.best_route_quality.items()},
                "sources": self.sources,
                "task_types": {t: {"baseline": self.baseline[t].as_dict(),
                                   "candidate": self.candidate[t].as_dict()}
                               for t in sorted(self.baseline)}}


# --- deciding ---------------------------------------------------------------------------------
def _facts(row: dict[str, Any]) -> RequestFacts:
    return RequestFacts(text_chars=int(row["text_chars"] or 0), text_bytes=int(row["text_bytes"] or 0),
                        images=int(row["images"] or 0), videos=int(row["videos"] or 0),
                        has_tools=bool(row["has_tools"]), max_output_tokens=row["max_output_tokens"], stream=False)


def _label(row: dict[str, Any], policy: Policy) -> Label:
    record = {"task_type": row["task_type"], "confidence": row.get("confidence") or 1.0,
              "answer_length": row["answer_length"] or "medium", "subtasks": row["subtasks"] or 1,
              "rule": row.get("rule"), "text_chars": 0, "text_bytes": 0, "images": 0, "videos": 0,
              "has_tools": False, "stream": False, "max_cost_usd": 1, "latency_budget_ms": 1}
    probs = row.get("probabilities")
    if isinstance(probs, str):
        record["probabilities"] = orjson.loads(probs)
    elif row.get("top_task_type") is not None:
        # Grouped mode: the key holds whether the top probability clears this policy's floor.
        cfg = policy.classifier
        answer_length, subtasks = str(record["answer_length"]), int(record["subtasks"])
        if row["top_probability"]:
            return Label(row["top_task_type"], float(record["confidence"]), answer_length, subtasks)
        return Label(cfg.fallback_task_type, 0.0, answer_length, subtasks)
    return label_under(record, policy.classifier.confidence_floor, policy.classifier.fallback_task_type)


def decide_keys(con: duckdb.DuckDBPyConnection, policy: Policy, table: str, *, exact: bool) -> int:
    """Decide every distinct key of the log under ``policy`` into temp table ``table``
    (kh, route, est_cost, est_latency); returns how many decisions were computed."""
    floor = repr(float(policy.classifier.confidence_floor))
    columns = _EXACT_COLUMNS if exact else {k: v.replace("{floor}", floor) for k, v in _GROUP_COLUMNS.items()}
    key_expr = "hash(request_id)" if exact else f"hash({', '.join(columns.values())})"
    select = ", ".join(f"any_value({expr}) AS {name}" for name, expr in columns.items())
    cur = con.execute(f"SELECT {key_expr} AS kh, {select} FROM decisions WHERE {ROUTED} GROUP BY kh")
    names = [d[0] for d in cur.description or []]
    prior = PriorSignals(policy)
    khs: list[int] = []
    routes: list[str | None] = []
    costs: list[float | None] = []
    latencies: list[float | None] = []
    while batch := cur.fetchmany(10_000):
        for values in batch:
            row = dict(zip(names, values, strict=True))
            direct = row["direct_route"]
            if direct is not None and policy.resolve_model(direct) is None:
                decision = None
            else:
                signals = RecordedSignals(orjson.loads(row["signals"]), prior) if exact and row["signals"] else prior
                decision = decide(policy, _facts(row), _label(row, policy),
                                  Limits(float(row["max_cost_usd"]), float(row["latency_budget_ms"])), signals,
                                  forced_mode=row["forced_mode"], direct_route=direct,
                                  explore_draw=row["explore_draw"] if exact else None)
            chosen = decision.chosen if decision is not None else None
            khs.append(int(row["kh"]))
            routes.append(chosen.route if chosen else None)
            costs.append(chosen.cost_usd if chosen else None)
            latencies.append(chosen.latency_ms if chosen else None)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT unnest($1::UBIGINT[]) AS kh, "
                "unnest($2::VARCHAR[]) AS route, unnest($3::DOUBLE[]) AS est_cost, unnest($4::DOUBLE[]) AS est_latency",
                [khs, routes, costs, latencies])
    join_key = "hash(d.request_id)" if exact else key_expr
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table}_rows AS SELECT d.eval_type, d.request_id, "
                f"d.route AS logged_route, d.chosen AS logged_chosen, d.p, a.route, a.est_cost, a.est_latency "
                f"FROM decisions d JOIN {table} a ON a.kh = {join_key} WHERE d.{ROUTED}")
    return len(khs)


# --- outcomes ---------------------------------------------------------------------------------
@dataclass(slots=True)
class _Cell:
    n: int = 0
    cost_mean: float = 0.0
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))


def logged_cells(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], _Cell]:
    cells: dict[tuple[str, str], _Cell] = {}
    for task, route, n, cost in con.execute("""
            SELECT eval_type, route, count(*), avg(cost_usd) FROM decisions WHERE status = 'ok'
            GROUP BY 1, 2""").fetchall():
        cells[(task, route)] = _Cell(int(n), float(cost or 0.0))
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for task, route, latency in con.execute(f"""
            SELECT eval_type, route, latency_ms FROM (
              SELECT eval_type, route, latency_ms,
                     row_number() OVER (PARTITION BY eval_type, route ORDER BY hash(request_id)) AS k
              FROM decisions WHERE status = 'ok' AND latency_ms IS NOT NULL) WHERE k <= {LATENCY_SAMPLES_PER_CELL}
            """).fetchall():
        samples[(task, route)].append(float(latency))
    for key, values in samples.items():
        cells[key].latencies = np.asarray(values)
    return cells


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    if values.size == 0 or weights.sum() <= 0:
        return [math.nan for _ in qs]
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w) / w.sum()
    return [float(v[min(len(v) - 1, int(np.searchsorted(cum, q)))]) for q in qs]


def _summarise(name: str, counts: list[tuple[str, str | None, int, float, float]],
               cells: dict[tuple[str, str], _Cell], quality: Callable[[str, str], tuple[float, float]],
               min_outcomes: int, sources: dict[str, dict[str, str]]) -> dict[str, PolicyResult]:
    """counts: (task type, route or None for infeasible, requests, Σ est. cost, Σ est. latency)."""
    by_task: dict[str, list[tuple[str | None, int, float, float]]] = defaultdict(list)
    for task, route, n, est_cost, est_latency in counts:
        by_task[task].append((route, n, est_cost, est_latency))
        by_task["*"].append((route, n, est_cost, est_latency) if route is None else (f"{task}\x00{route}", n,
                                                                                     est_cost, est_latency))
    out: dict[str, PolicyResult] = {}
    for task, rows in by_task.items():
        result = PolicyResult(name)
        values: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        q_sum = q_var = 0.0
        answered = 0
        shares: dict[str, int] = defaultdict(int)
        for key, n, est_cost, est_latency in rows:
            result.requests += n
            if key is None:
                result.infeasible += n
                continue
            t, _, route = key.partition("\x00") if task == "*" else (task, "", key)
            shares[route] += n
            answered += n
            cell = cells.get((t, route))
            logged = cell is not None and cell.n >= min_outcomes
            sources.setdefault(t, {})[route] = "logged" if logged else "estimated"
            if logged and cell is not None:
                result.cost_total += n * cell.cost_mean
                if cell.latencies.size:
                    values.append(cell.latencies)
                    weights.append(np.full(cell.latencies.size, n / cell.latencies.size))
            else:
                result.cost_total += est_cost
                values.append(np.asarray([est_latency / n]))
                weights.append(np.asarray([float(n)]))
            mean, sd = quality(t, route)
            q_sum += n * mean
            q_var += (n * sd) ** 2
        result.shares = {r: c / result.requests for r, c in shares.items()} if result.requests else {}
        if answered:
            result.quality = q_sum / answered
            half = 1.96 * math.sqrt(q_var) / answered
            result.quality_low, result.quality_high = result.quality - half, result.quality + half
        if values:
            result.latency_p50_ms, result.latency_p95_ms = _weighted_quantiles(
                np.concatenate(values), np.concatenate(weights), (0.5, 0.95))
        out[task] = result
    return out


def _counts(con: duckdb.DuckDBPyConnection, rows_view: str) -> list[tuple[str, str | None, int, float, float]]:
    rows = con.execute(f"SELECT eval_type, route, count(*), sum(est_cost), sum(est_latency) FROM {rows_view} "
                       "GROUP BY 1, 2").fetchall()
    return [(t, r, int(n), float(c or 0.0), float(lat or 0.0)) for t, r, n, c, lat in rows]


def _ips(con: duckdb.DuckDBPyConnection, rows_view: str) -> tuple[float | None, int]:
    row = con.execute(f"""
        SELECT sum(f.score / a.p) / sum(1.0 / a.p), count(*)
        FROM {rows_view} a JOIN feedback f USING (request_id)
        WHERE a.route = a.logged_route AND a.p > 0""").fetchone()
    if row is None or not row[1]:
        return None, 0
    return float(row[0]), int(row[1])


def replay(con: duckdb.DuckDBPyConnection, candidate: Policy, quality_model: QualityModel, *,
           baseline: Policy | None = None, exact: bool = False, min_outcomes: int = 30,
           live_candidates: Policy | None = None) -> ReplayReport:
    """``live_candidates``: the policy whose task candidates define "always the best route"."""
    computed = decide_keys(con, candidate, "replay_candidate", exact=exact)
    if baseline is not None:
        computed += decide_keys(con, baseline, "replay_baseline", exact=exact)
        base_rows = "replay_baseline_rows"
    else:  # the live policy: what the log says was decided
        con.execute(f"""CREATE OR REPLACE TEMP VIEW replay_logged_rows AS
            SELECT eval_type, request_id, route AS logged_route, chosen AS logged_chosen, p,
                   chosen AS route, est_cost_usd AS est_cost, est_latency_ms AS est_latency FROM decisions
            WHERE {ROUTED}""")
        base_rows = "replay_logged_rows"
    cells = logged_cells(con)

    def quality(task: str, route: str) -> tuple[float, float]:
        cell = quality_model.get(task, route)
        if cell is None:
            return DEFAULT_PRIOR, quality_model.sigma / math.sqrt(quality_model.prior_strength)
        return cell.posterior, cell.sd

    sources: dict[str, dict[str, str]] = {}
    base = _summarise("baseline", _counts(con, base_rows), cells, quality, min_outcomes, sources)
    cand = _summarise("candidate", _counts(con, "replay_candidate_rows"), cells, quality, min_outcomes, sources)
    base["*"].ips_quality, base["*"].ips_matched = _ips(con, base_rows)
    cand["*"].ips_quality, cand["*"].ips_matched = _ips(con, "replay_candidate_rows")
    # Always the best route: per task type, the candidate route of highest estimated quality.
    reference = live_candidates or baseline or candidate
    best: dict[str, float] = {}
    total = weighted = 0.0
    for task, result in base.items():
        if task == "*":
            continue
        routes = reference.tasks[task].candidates if task in reference.tasks else ()
        best[task] = max((quality(task, r)[0] for r in routes), default=math.nan)
        if not math.isnan(best[task]):
            total += result.requests
            weighted += result.requests * best[task]
    best["*"] = weighted / total if total else math.nan
    report = ReplayReport(base, cand, best, sources, decisions_computed=computed)
    row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT {ROUTED}) FROM decisions").fetchone()
    report.rows, report.direct = (int(row[0]), int(row[1])) if row else (0, 0)
    if exact and baseline is None:
        same = con.execute("SELECT avg(CASE WHEN route IS NOT DISTINCT FROM logged_chosen THEN 1.0 ELSE 0.0 END) "
                           "FROM replay_candidate_rows").fetchone()
        report.same_decision = float(same[0]) if same and same[0] is not None else None
    return report
