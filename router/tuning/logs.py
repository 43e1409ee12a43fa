"""Decision logs as DuckDB views: JSONL (plain or compressed, globs) and Parquet, one or many paths.

``open_logs(paths)`` returns a connection with three views:

- ``decisions``: one row per decision record, typed columns (``eval_type`` = what the request most
  likely is: the classifier's own top label, else the logged label);
- ``feedback``: the *last* feedback per request id (feedback is idempotent: the last one wins);
- ``raw_records``: every line, for counting the corrupt ones (not a JSON object with an ``event``).

A fleet ships its gateways' stdout (``ROUTER_DECISION_LOG=-``) through a collector to Parquet files
(e.g. ``s3://bucket/decisions/date=*/part-*.parquet``, read with DuckDB's httpfs extension) and
points ``--log`` at them; the same SQL runs over both formats.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

# Every column the analytics read, with its type: a line missing one reads it as NULL, an unknown
# field is ignored, and a line that is not JSON becomes a row of NULLs (counted as corrupt).
COLUMNS: dict[str, str] = {
    "event": "VARCHAR", "v": "INTEGER", "ts": "DOUBLE", "request_id": "VARCHAR",
    "policy_version": "VARCHAR", "model": "VARCHAR", "forced_mode": "VARCHAR", "direct_route": "VARCHAR",
    "text_chars": "BIGINT", "text_bytes": "BIGINT", "images": "INTEGER", "videos": "INTEGER",
    "has_tools": "BOOLEAN", "max_output_tokens": "BIGINT", "stream": "BOOLEAN", "messages": "INTEGER",
    "input_tokens": "BIGINT",
    "task_type": "VARCHAR", "confidence": "DOUBLE", "answer_length": "VARCHAR", "subtasks": "INTEGER",
    "rule": "VARCHAR", "top_task_type": "VARCHAR", "top_probability": "DOUBLE",
    "max_cost_usd": "DOUBLE", "latency_budget_ms": "DOUBLE",
    "chosen": "VARCHAR", "propensity": "DOUBLE", "explored": "BOOLEAN", "explore_draw": "DOUBLE",
    "est_cost_usd": "DOUBLE", "est_latency_ms": "DOUBLE",
    "status": "VARCHAR", "route": "VARCHAR", "mode": "VARCHAR", "tokens_in": "BIGINT", "tokens_out": "BIGINT",
    "tokens_reasoning": "BIGINT", "cost_usd": "DOUBLE", "ttft_ms": "DOUBLE", "latency_ms": "DOUBLE",
    "fallbacks": "INTEGER", "shadow_route": "VARCHAR", "label_source": "VARCHAR", "cascade_cost_usd": "DOUBLE",
    "signals": "JSON", "probabilities": "JSON", "prompt_messages": "JSON", "prompt_sha256": "VARCHAR",
    # feedback events
    "score": "DOUBLE", "thumbs": "VARCHAR", "corrected_task_type": "VARCHAR",
}


@dataclass(frozen=True, slots=True)
class LogCounts:
    lines: int
    corrupt: int
    decisions: int
    feedback: int


def _source(path: str) -> str:
    quoted = path.replace("'", "''")
    if path.endswith(".parquet"):
        return f"read_parquet('{quoted}', union_by_name=true)"
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items())
    return (f"read_json('{quoted}', format='newline_delimited', ignore_errors=true, "
            f"columns={{{columns}}})")


def _select_known(path: str, con: duckdb.DuckDBPyConnection) -> str:
    """Parquet files may lack a column (older writers): select it as NULL then."""
    src = _source(path)
    if not path.endswith(".parquet"):
        return f"SELECT {', '.join(COLUMNS)} FROM {src}"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    cols = [name if name in present else f"CAST(NULL AS {kind}) AS {name}" for name, kind in COLUMNS.items()]
    return f"SELECT {', '.join(cols)} FROM {src}"


def open_logs(paths: Sequence[str], *, memory_limit: str = "1GB", threads: int | None = None,
              con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    if not paths:
        raise ValueError("no log given: pass --log PATH (JSONL or Parquet; globs allowed)")
    con = con or duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")  # lets big scans stream instead of buffering
    con.execute("SET enable_progress_bar = false")
    # Spill to the system temp dir, not `.tmp` in whatever directory the command runs from.
    spill = Path(tempfile.gettempdir()) / "model-router-duckdb"
    con.execute(f"SET temp_directory = '{spill}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    union = " UNION ALL ".join(f"({_select_known(p, con)})" for p in paths)
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_records AS {union}")
    con.execute("""
        CREATE OR REPLACE TEMP VIEW decisions AS
        SELECT *, coalesce(top_task_type, task_type) AS eval_type,
               coalesce(propensity, 1.0) AS p
        FROM raw_records WHERE event = 'decision' AND request_id IS NOT NULL AND task_type IS NOT NULL""")
    con.execute("""
        CREATE OR REPLACE TEMP VIEW feedback AS
        SELECT request_id, arg_max(score, ts) AS score, arg_max(corrected_task_type, ts) AS corrected_task_type,
               count(*) AS times
        FROM raw_records WHERE event = 'feedback' AND request_id IS NOT NULL AND score BETWEEN 0 AND 1
        GROUP BY request_id""")
    return con


def count_records(con: duckdb.DuckDBPyConnection) -> LogCounts:
    row = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE event IS NULL),
               count(*) FILTER (WHERE event = 'decision'), count(*) FILTER (WHERE event = 'feedback')
        FROM raw_records""").fetchone()
    assert row is not None
    return LogCounts(*(int(x) for x in row))
