"""Synthetic decision logs at any size, generated inside DuckDB (no Python loop per row).

For benchmarks and tests of ``tune``/``replay`` at fleet scale: ``write_synthetic(path, rows)`` writes
decision records (and feedback on a third of them) with the columns the analytics read, as Parquet
(what a fleet's collector produces) or JSONL (what one gateway writes). Requests follow a mix of
task types, prompt sizes (log-normal-ish), answer lengths, ceilings and budgets; the live choice
explores 10 % of the time; scores come from a fixed truth per (task type, route) plus noise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb

ROUTES = {
    "simple": ["kimi:instant", "gpt-mini:default", "gpt:default", "claude:default"],
    "reasoning": ["kimi:thinking", "gpt:default", "claude:default", "gpt-mini:default"],
    "coding": ["kimi:thinking", "claude:default", "gpt:default", "kimi:instant"],
    "creative": ["kimi:instant", "claude:default", "gpt:default", "kimi:thinking"],
    "agentic": ["kimi:agent", "claude:default", "gpt:default", "gpt-mini:default"],
}
TRUTH = {
    "simple": [0.92, 0.84, 0.76, 0.68], "reasoning": [0.90, 0.86, 0.78, 0.70],
    "coding": [0.90, 0.82, 0.74, 0.45], "creative": [0.90, 0.82, 0.74, 0.66], "agentic": [0.90, 0.82, 0.74, 0.62],
}
COST_PER_TOKEN = {"kimi": 1.6e-6, "gpt-mini": 2e-6, "gpt": 14e-6, "claude": 15e-6}


def _u(i: str, salt: str) -> str:
    """A uniform draw in [0, 1) from the row number (deterministic, no RNG state)."""
    return f"((hash({i}, '{salt}') % 1000000) / 1000000.0)"


def write_synthetic(path: Path, rows: int, *, fmt: str = "parquet", con: duckdb.DuckDBPyConnection | None = None,
                    memory_limit: str = "1GB") -> list[Path]:
    """Writes ``<path>.decisions.<fmt>`` and ``<path>.feedback.<fmt>``; returns both paths."""
    con = con or duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = '{Path(tempfile.gettempdir()) / 'model-router-duckdb'}'")
    tasks = list(ROUTES)
    task_case = "CASE " + " ".join(f"WHEN t = {k} THEN '{name}'" for k, name in enumerate(tasks)) + " END"
    route_case = "CASE " + " ".join(f"WHEN t = {k} AND r = {j} THEN '{route}'" for k, name in enumerate(tasks)
                                    for j, route in enumerate(ROUTES[name])) + " END"
    truth_case = "CASE " + " ".join(f"WHEN t = {k} AND r = {j} THEN {q}" for k, name in enumerate(tasks)
                                    for j, q in enumerate(TRUTH[name])) + " END"
    price_case = "CASE " + " ".join(f"WHEN split_part(route, ':', 1) = '{b}' THEN {p}"
                                    for b, p in COST_PER_TOKEN.items()) + " END"
    base = f"""
        WITH draws AS (
            SELECT i, CAST(floor({_u('i', 'task')} * 5) AS INTEGER) AS t,
                   {_u('i', 'explore')} AS e, {_u('i', 'alt')} AS a, {_u('i', 'size')} AS s,
                   {_u('i', 'len')} AS l, {_u('i', 'limits')} AS m, {_u('i', 'noise1')} AS n1,
                   {_u('i', 'noise2')} AS n2, {_u('i', 'conf')} AS c, {_u('i', 'fb')} AS f
            FROM range({int(rows)}) AS g(i)),
        chosen AS (
            SELECT *, CASE WHEN e < 0.1 THEN 1 + CAST(floor(a * 3) AS INTEGER) ELSE 0 END AS r,
                   CASE WHEN e < 0.1 THEN 0.1 / 3 ELSE 0.9 END AS propensity
            FROM draws),
        rows AS (
            SELECT *, {route_case} AS route, {task_case} AS task_type,
                   CAST(20 + exp(s * 8.5) AS BIGINT) AS text_chars,
                   CASE WHEN l < 0.3 THEN 'short' WHEN l < 0.85 THEN 'medium' ELSE 'long' END AS answer_length,
                   (ARRAY[1.0, 1.0, 0.05, 0.01])[1 + CAST(floor(m * 4) AS INTEGER)] AS max_cost_usd,
                   (ARRAY[180000.0, 180000.0, 30000.0])[1 + CAST(floor(m * 3) AS INTEGER)] AS latency_budget_ms,
                   CAST(40 + n1 * 900 AS BIGINT) AS tokens_out
            FROM chosen)
    """
    decisions = f"""{base}
        SELECT 'decision' AS event, 1 AS v, 1.7e9 + i AS ts, 'rtr-' || i AS request_id,
               'synthetic' AS policy_version, 'auto' AS model, CAST(NULL AS VARCHAR) AS forced_mode,
               CAST(NULL AS VARCHAR) AS direct_route, text_chars, text_chars AS text_bytes, 0 AS images,
               0 AS videos, false AS has_tools, CAST(NULL AS BIGINT) AS max_output_tokens, n2 < 0.2 AS stream,
               1 AS messages, text_chars // 4 + 1 AS input_tokens, task_type, 0.3 + 0.7 * c AS confidence,
               answer_length, 1 AS subtasks, CAST(NULL AS VARCHAR) AS rule, task_type AS top_task_type,
               0.3 + 0.7 * c AS top_probability, max_cost_usd, latency_budget_ms, route AS chosen, propensity,
               e < 0.1 AS explored, e AS explore_draw,
               (text_chars // 4 + 500) * {price_case} AS est_cost_usd, 2000.0 AS est_latency_ms,
               CASE WHEN n2 < 0.99 THEN 'ok' ELSE 'upstream_error' END AS status, route,
               split_part(route, ':', 2) AS mode, text_chars // 4 + 1 AS tokens_in, tokens_out,
               CASE WHEN route LIKE '%thinking' OR route LIKE '%agent' THEN tokens_out // 3 ELSE 0 END
                 AS tokens_reasoning,
               (text_chars // 4 + tokens_out) * {price_case} AS cost_usd,
               CASE WHEN n2 < 0.2 THEN 200 + n1 * 600 END AS ttft_ms, 300 + tokens_out * 18.0 AS latency_ms,
               0 AS fallbacks, CAST(NULL AS VARCHAR) AS shadow_route, CAST(NULL AS VARCHAR) AS prompt_sha256
        FROM rows"""
    feedback = f"""{base}
        SELECT 'feedback' AS event, 1 AS v, 1.7e9 + i + 1 AS ts, 'rtr-' || i AS request_id,
               greatest(0.0, least(1.0, {truth_case} + (n1 + n2 - 1.0) * 0.3)) AS score,
               CAST(NULL AS VARCHAR) AS thumbs,
               CASE WHEN f < 0.05 THEN task_type END AS corrected_task_type
        FROM rows WHERE f < 1.0 / 3"""
    out = []
    for name, query in (("decisions", decisions), ("feedback", feedback)):
        target = Path(f"{path}.{name}.{'parquet' if fmt == 'parquet' else 'jsonl'}")
        option = "(FORMAT parquet, COMPRESSION zstd)" if fmt == "parquet" else "(FORMAT json)"
        con.execute(f"COPY ({query}) TO '{target}' {option}")
        out.append(target)
    return out
