"""The tune report: markdown tables and PNG plots (matplotlib, the optional ``report`` extra).

Plots: the cost–quality frontier per task type with the live and candidate choices marked, route
shares before/after, and the calibration of the classifier's confidence against users' label
corrections and feedback scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from router.policy.model import Policy
from router.tuning.replay import ReplayReport, logged_cells
from router.tuning.tune import TuneResult


def _top(shares: dict[str, float]) -> str | None:
    return max(shares, key=shares.__getitem__) if shares else None


def calibration(con: duckdb.DuckDBPyConnection) -> list[tuple[float, int, float | None, float | None]]:
    """(bin start, requests, label agreement with corrections, mean feedback score) per 0.1 of confidence."""
    rows = con.execute("""
        SELECT floor(least(d.top_probability, 0.9999) * 10) / 10 AS bin, count(*),
               avg(CASE WHEN f.corrected_task_type IS NULL THEN NULL
                        WHEN f.corrected_task_type = d.top_task_type THEN 1.0 ELSE 0.0 END),
               avg(f.score)
        FROM decisions d LEFT JOIN feedback f USING (request_id)
        WHERE d.top_probability IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    return [(float(b), int(n), None if a is None else float(a), None if s is None else float(s))
            for b, n, a, s in rows]


def write_report(directory: Path, *, prior: Policy, result: TuneResult, replay: ReplayReport,
                 con: duckdb.DuckDBPyConnection, diff: str, log_counts: Any, candidate_path: Path) -> list[str]:
    """Writes ``report.md`` (+ PNGs when matplotlib is installed); returns notes for the terminal."""
    directory.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    plots = _plots(directory, prior, result, replay, con)
    if plots is None:
        notes.append("matplotlib is not installed: the report has tables only "
                     "(pip install 'model-router[report]' for the plots)")
        plots = []
    lines = [f"# Tuning report: {candidate_path.name}", "",
             f"Log: {log_counts.decisions} decisions, {log_counts.feedback} feedback lines, "
             f"{log_counts.corrupt} corrupt lines skipped. Quality model: normal-normal shrinkage toward the "
             f"policy prior (prior worth {result.quality.prior_strength:g} observations, pooled noise "
             f"σ = {result.quality.sigma:.3f}); feedback weighted by 1/propensity.", ""]
    if not result.enough_data:
        lines += ["**Too little data: the quality priors were kept.**", ""]
    lines += ["## Quality per (task type, route)", "",
              "| task type | route | prior | feedback | evals | n_eff | posterior | ± sd | moved |",
              "|---|---|---|---|---|---|---|---|---|"]
    for (task, route), cell in sorted(result.quality.cells.items()):
        ev = cell.evidence
        lines.append(f"| {task} | {route} | {cell.prior:.3f} | {ev.n_feedback} | {ev.n_eval} | {ev.n_eff:.1f} | "
                     f"{cell.posterior:.3f} | {cell.sd:.3f} | {'yes' if cell.enough else 'no (too little data)'} |")
    lines += ["", "## Thresholds", "", "| task type | min_quality before | after |", "|---|---|---|"]
    for task, rule in prior.tasks.items():
        before = rule.min_quality if rule.min_quality is not None else prior.min_quality
        after = result.min_quality.get(task)
        lines.append(f"| {task} | {before:g} | {'kept' if after is None else f'{after:g}'} |")
    floor = result.confidence_floor
    lines += ["", f"classifier.confidence_floor: {prior.classifier.confidence_floor:g} → "
              f"{'kept' if floor is None else f'{floor:g}'}"]
    if result.floor_curve:
        lines += ["", "| floor | label precision above it | labels kept |", "|---|---|---|"]
        lines += [f"| {f:.2f} | {p:.3f} | {n} |" for f, p, n in result.floor_curve if not math.isnan(p)]
    if result.estimates:
        lines += ["", "## Token estimates refitted", "", "| task type | output | reasoning |", "|---|---|---|"]
        lines += [f"| {t} | {v['output_tokens']} | {v.get('reasoning_tokens', '')} |"
                  for t, v in sorted(result.estimates.items())]
    if result.latency:
        lines += ["", "## Latency priors refitted (streams)", "", "| backend | ttft_ms | tokens/s |", "|---|---|---|"]
        lines += [f"| {b} | {v['ttft_ms']} | {v['output_tokens_per_s']} |" for b, v in sorted(result.latency.items())]
    lines += ["", "## Replay on the logged traffic: live vs candidate", "", *replay_table(replay), ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    lines += [*(f"![{p}]({p})" for p in plots), "", "## Diff", "", "```diff", diff.rstrip(), "```", ""]
    (directory / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return notes


def replay_table(replay: ReplayReport) -> list[str]:
    lines = ["| task type | policy | requests | top route | cost/request | p50 ms | p95 ms | quality [95% CI] | "
             "infeasible |", "|---|---|---|---|---|---|---|---|---|"]
    for task in sorted(replay.baseline, key=lambda t: (t == "*", t)):
        for name, res in (("live", replay.baseline[task]), ("candidate", replay.candidate.get(task))):
            if res is None:
                continue
            lines.append(f"| {'all' if task == '*' else task} | {name} | {res.requests} | {_top(res.shares)} | "
                         f"${res.cost_per_request:.6f} | {res.latency_p50_ms:.0f} | {res.latency_p95_ms:.0f} | "
                         f"{res.quality:.3f} [{res.quality_low:.3f}, {res.quality_high:.3f}] | {res.infeasible} |")
    best = replay.best_route_quality.get("*", math.nan)
    lines += ["", f"Always the best route (by the quality model): {best:.3f}."]
    return lines


def _plots(directory: Path, prior: Policy, result: TuneResult, replay: ReplayReport,
           con: duckdb.DuckDBPyConnection) -> list[str] | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    written: list[str] = []
    cells = logged_cells(con)
    tasks = [t for t in sorted(replay.baseline) if t != "*"]
    if tasks:
        cols = min(3, len(tasks))
        rows = math.ceil(len(tasks) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
        for ax, task in zip(axes.flat, tasks, strict=False):
            live, cand = _top(replay.baseline[task].shares), _top(replay.candidate[task].shares)
            for (t, route), cell in cells.items():
                q = result.quality.get(t, route)
                if t != task or q is None or cell.n == 0:
                    continue
                marker = "*" if route == cand else ("s" if route == live else "o")
                ax.scatter(cell.cost_mean, q.posterior, marker=marker, s=120 if marker != "o" else 40)
                ax.errorbar(cell.cost_mean, q.posterior, yerr=1.96 * q.sd, fmt="none", alpha=0.4)
                ax.annotate(route + (" (candidate)" if route == cand else "") + (" (live)" if route == live else ""),
                            (cell.cost_mean, q.posterior), fontsize=7)
            ax.set_title(task)
            ax.set_xlabel("cost per request (USD, logged)")
            ax.set_ylabel("quality (posterior)")
        for ax in list(axes.flat)[len(tasks):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(directory / "frontier.png", dpi=90)
        plt.close(fig)
        written.append("frontier.png")
    routes = sorted({r for res in (replay.baseline["*"], replay.candidate["*"]) for r in res.shares}) \
        if "*" in replay.baseline else []
    if routes:
        fig, ax = plt.subplots(figsize=(8, 4))
        xs = range(len(routes))
        ax.bar([x - 0.2 for x in xs], [replay.baseline["*"].shares.get(r, 0) for r in routes], 0.4, label="live")
        ax.bar([x + 0.2 for x in xs], [replay.candidate["*"].shares.get(r, 0) for r in routes], 0.4,
               label="candidate")
        ax.set_xticks(list(xs), routes, rotation=30, ha="right")
        ax.set_ylabel("share of requests")
        ax.legend()
        fig.tight_layout()
        fig.savefig(directory / "route_shares.png", dpi=90)
        plt.close(fig)
        written.append("route_shares.png")
    calib = calibration(con)
    if calib:
        fig, ax = plt.subplots(figsize=(6, 4))
        centers = [b + 0.05 for b, _, _, _ in calib]
        ax.bar(centers, [n for _, n, _, _ in calib], 0.09, alpha=0.3, label="requests")
        ax2 = ax.twinx()
        agree = [(c, a) for c, (_, _, a, _) in zip(centers, calib, strict=True) if a is not None]
        score = [(c, s) for c, (_, _, _, s) in zip(centers, calib, strict=True) if s is not None]
        if agree:
            ax2.plot(*zip(*agree, strict=True), "o-", label="label agrees with correction")
        if score:
            ax2.plot(*zip(*score, strict=True), "s--", label="mean feedback score")
        ax2.plot([0, 1], [0, 1], ":", color="grey")
        ax2.set_ylim(0, 1.05)
        ax.set_xlabel("classifier confidence (top probability)")
        ax.set_ylabel("requests")
        if agree or score:
            ax2.legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        fig.savefig(directory / "calibration.png", dpi=90)
        plt.close(fig)
        written.append("calibration.png")
    return written


__all__: Sequence[str] = ["calibration", "replay_table", "write_report"]
