"""``model-router route``: the dry-run decision as a table for a person, or as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from router.cli import main
from tests.conftest import default_policy

PROMPT = "Write a Python function that merges two sorted lists."


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["route", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_shows_candidates_estimates_reasons_choice_and_fallbacks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, PROMPT, "--json")
    assert code == 0
    decision = json.loads(out)
    code, table, _ = run(capsys, PROMPT)
    assert code == 0
    lines = table.splitlines()
    assert lines[0].startswith(f"task type   {decision['task_type']} (confidence ")
    assert lines[1] == "limits      ceiling $1, budget 180000 ms, objective cheapest_meeting_quality"
    header = next(line for line in lines if line.startswith("route"))
    assert all(word in header for word in ("est. cost $", "est. ms", "quality", "verdict"))
    for cand in decision["candidates"]:
        row = next(line for line in lines if line.startswith(cand["route"] + " "))
        assert f"{cand['estimated_cost_usd']:.6f}" in row
        if cand["route"] == decision["choice"]:
            assert row.rstrip().endswith("CHOSEN")
    assert f"choice      {decision['choice']}" in lines
    assert f"fallbacks   {' -> '.join(decision['fallbacks']) or '-'}" in lines


def test_tight_limits_show_each_rejection_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, table, _ = run(capsys, PROMPT, "--max-cost", "0.0005", "--latency-budget", "5000")
    rejected = [line for line in table.splitlines() if "rejected:" in line]
    assert rejected
    for line in rejected:
        assert re.search(r"rejected: (cost|latency) \(est\. ", line), line
    assert code in (0, 3)


def test_an_infeasible_request_exits_3_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, table, _ = run(capsys, PROMPT, "--max-cost", "0.0000000001")
    assert code == 3
    assert "choice      none (infeasible)" in table
    why = next(line for line in table.splitlines() if line.startswith("why none"))
    assert "(cost: est. $" in why


def test_a_policy_file_and_a_forced_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(default_policy(objective="fastest")))
    code, out, _ = run(capsys, PROMPT, "--config", str(policy), "--model", "auto:thinking", "--json")
    decision = json.loads(out)
    assert code == 0 and decision["objective"] == "fastest"
    assert decision["choice"] in ("kimi:thinking", "gpt:default", "gpt-mini:default", "claude:default")
    assert all(c["route"] != "kimi:instant" for c in decision["candidates"])


def test_a_broken_policy_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(default_policy(objective="cheapest")))
    code, _, err = run(capsys, PROMPT, "--config", str(policy))
    assert code == 1 and "objective:" in err
