"""Answer quality per (task type, route): the policy's prior updated by feedback and evaluations.

The model is **normal-normal shrinkage**: an observation (a feedback score, thumbs up = 1 / down = 0,
or a judge's absolute 0–1 score) is the cell's true quality plus noise of variance σ² (pooled over
all evidence). The prior is the policy's value, worth ``prior_strength`` observations, so

    posterior mean = (k·prior + n_eff·mean) / (k + n_eff),   posterior sd = σ / sqrt(k + n_eff).

Feedback is weighted by 1 / propensity, clipped at ``MAX_WEIGHT`` and self-normalised within each
cell (the weights of a cell's n feedback sum to n), so requests that exploration sent to a route the
live policy would not pick count for what they reveal about that route on the whole task type
without one lucky draw outweighing a hundred evaluations; ``n_eff`` is Kish's effective sample size.
Thumbs (0/1) and scores share the 0–1 scale; a Beta-binomial on thumbs alone would give nearly the
same means, and the normal model also takes graded scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from router.policy.model import Policy

DEFAULT_PRIOR = 0.5  # a (task type, route) the policy has no prior for
MAX_WEIGHT = 10.0    # clipped inverse propensity: bias traded for variance, as clipped IPS does


@dataclass(slots=True)
class Evidence:
    weight: float = 0.0          # sum of weights (feedback: 1/propensity; evaluations: 1)
    weighted_sum: float = 0.0
    weight_sq: float = 0.0       # sum of squared weights (for the effective sample size)
    n_feedback: int = 0
    n_eval: int = 0

    @property
    def mean(self) -> float:
        return self.weighted_sum / self.weight if self.weight else math.nan

    @property
    def n_eff(self) -> float:
        return self.weight * self.weight / self.weight_sq if self.weight_sq else 0.0


@dataclass(slots=True)
class CellQuality:
    task_type: str
    route: str
    prior: float
    evidence: Evidence
    posterior: float
    sd: float
    enough: bool


@dataclass(slots=True)
class QualityModel:
    cells: dict[tuple[str, str], CellQuality] = field(default_factory=dict)
    sigma: float = 0.25
    prior_strength: float = 10.0

    def get(self, task_type: str, route: str) -> CellQuality | None:
        return self.cells.get((task_type, route))

    def mean(self, task_type: str, route: str, fallback: float = DEFAULT_PRIOR) -> float:
        cell = self.cells.get((task_type, route))
        return cell.posterior if cell is not None else fallback


def feedback_evidence(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, float, float, float, int, float]]:
    """(task type, route, Σw, Σw·score, Σw², n, Σw·score²) over answered requests with feedback."""
    return con.execute(f"""
        SELECT task_type, route, sum(w), sum(w * score), sum(w * w), count(*), sum(w * score * score)
        FROM (SELECT coalesce(f.corrected_task_type, d.eval_type) AS task_type, d.route, f.score,
                     least(1.0 / d.p, {MAX_WEIGHT}) AS w
              FROM decisions d JOIN feedback f USING (request_id)
              WHERE d.status = 'ok' AND d.p > 0)
        GROUP BY 1, 2""").fetchall()


def eval_evidence(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> list[tuple[str, str, int, float, float]]:
    """(task type, route, n, Σscore, Σscore²) from ``model-router eval`` rows with a score."""
    if not paths:
        return []
    sources = " UNION ALL ".join(
        "SELECT task_type, route, score FROM read_json('{}', format='newline_delimited', ignore_errors=true, "
        "columns={{'task_type': 'VARCHAR', 'route': 'VARCHAR', 'score': 'DOUBLE'}})".format(p.replace("'", "''"))
        for p in paths)
    return con.execute(f"""
        SELECT task_type, route, count(*), sum(score), sum(score * score) FROM ({sources})
        WHERE task_type IS NOT NULL AND route IS NOT NULL AND score BETWEEN 0 AND 1
        GROUP BY 1, 2""").fetchall()


def fit_quality(prior: Policy, con: duckdb.DuckDBPyConnection, eval_paths: Sequence[str] = (), *,
                prior_strength: float = 10.0, min_evidence: int = 30) -> QualityModel:
    evidence: dict[tuple[str, str], Evidence] = {}
    total = total_sq = total_w = 0.0
    for task, route, w, ws, w2, n, wss in feedback_evidence(con):
        scale = n / w  # self-normalised: the cell's feedback weighs as much as its count
        ev = evidence.setdefault((task, route), Evidence())
        ev.weight += n
        ev.weighted_sum += ws * scale
        ev.weight_sq += w2 * scale * scale
        ev.n_feedback += int(n)
        total, total_sq, total_w = total + ws * scale, total_sq + wss * scale, total_w + n
    for task, route, n, s, ss in eval_evidence(con, eval_paths):
        ev = evidence.setdefault((task, route), Evidence())
        ev.weight += n
        ev.weighted_sum += s
        ev.weight_sq += n
        ev.n_eval += int(n)
        total, total_sq, total_w = total + s, total_sq + ss, total_w + n
    # Pooled noise: the spread of single observations around their cell means.
    within = 0.0
    if total_w:
        between = sum(ev.weight * ev.mean ** 2 for ev in evidence.values() if ev.weight)
        within = max(0.0, (total_sq - between) / total_w)
    sigma = math.sqrt(within) if within > 0 else 0.25
    model = QualityModel(sigma=sigma, prior_strength=prior_strength)
    keys = {(t, r) for t, routes in prior.quality.items() for r in routes} | set(evidence)
    for task, route in sorted(keys):
        p = prior.quality.get(task, {}).get(route, DEFAULT_PRIOR)
        ev = evidence.get((task, route), Evidence())
        n_eff = ev.n_eff
        enough = ev.n_feedback + ev.n_eval >= min_evidence
        if enough:
            post = (prior_strength * p + n_eff * ev.mean) / (prior_strength + n_eff)
            sd = sigma / math.sqrt(prior_strength + n_eff)
        else:  # too little data: keep the prior as it is
            post, sd = p, sigma / math.sqrt(prior_strength)
        model.cells[(task, route)] = CellQuality(task, route, p, ev, post, sd, enough)
    return model
