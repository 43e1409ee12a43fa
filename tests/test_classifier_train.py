"""Training is deterministic, and the training data is read from the documented places."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router.classifier import TaskClassifier
from router.classifier import artifact as artifact_io
from router.classifier.commands import train_command
from router.classifier.train import (
    TEXT_LABELS,
    Encoded,
    Row,
    default_data_path,
    floor_check,
    shortened_documents,
    source_group,
    train,
)

DATA = default_data_path()
needs_data = pytest.mark.skipif(not DATA.is_file(), reason=f"shared training data not found at {DATA}")


@needs_data
def test_training_twice_gives_byte_identical_artifact_files(tmp_path: Path) -> None:
    # evaluate=False skips the held-out folds (the slow part); the artifact files come from the final
    # fit alone, which is the same code path `model-router train` runs.
    first = train(DATA, tmp_path / "a", evaluate=False, log=lambda _: None)
    second = train(DATA, tmp_path / "b", evaluate=False, log=lambda _: None)
    for name in (artifact_io.WEIGHTS_FILE, artifact_io.VOCAB_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first["files"] == second["files"]
    assert first["data"] == second["data"]
    # What was written loads and classifies.
    result = TaskClassifier.load(tmp_path / "a").classify([{"role": "user", "content": "Write a sonnet."}])
    assert result.task_type == "creative"


def test_default_data_path_is_beside_the_repo_and_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTER_TRAIN_DATA", raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert default_data_path() == repo.parent / "shared" / "datasets" / "routing-train.jsonl"
    monkeypatch.setenv("ROUTER_TRAIN_DATA", "/data/other.jsonl")
    assert default_data_path() == Path("/data/other.jsonl")


def test_train_command_names_the_missing_data_and_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_command(str(tmp_path / "nope.jsonl"), str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl not found" in err and "ROUTER_TRAIN_DATA" in err
    assert not (tmp_path / "out").exists()


def test_source_groups_hold_out_whole_repositories_and_template_families() -> None:
    # Every file and subset of a repository is one source: both NQ files, all of Qwen2.5-Math.
    assert source_group("google-research-datasets/natural-questions:nq_open/NQ-open.dev.jsonl") == (
        "google-research-datasets/natural-questions")
    assert source_group("QwenLM/Qwen2.5-Math:x/svamp/test.jsonl#svamp") == "QwenLM/Qwen2.5-Math"
    assert source_group("X-PLUG/WritingBench:a/b.jsonl#Advertising & Marketing/Slogans") == "X-PLUG/WritingBench"
    # Repositories wrapped in the same request templates are held out together.
    assert source_group("TheAlgorithms/Python:a.py") == source_group("TheAlgorithms/Java:B.java")
    assert source_group("reactjs/ja.react.dev:x.md") == source_group("reactjs/es.react.dev:y.md")
    # Our own corpus: one label's subsets together.
    assert source_group("model-router/coding-debug") == source_group("model-router/coding-pasted") == (
        "model-router/coding")


def test_shortened_documents_keep_the_question_and_land_below_the_rule() -> None:
    document = "\n".join(f"Speaker {i % 3}: item {i} was discussed at some length today." for i in range(900))
    rows = [Row(f"{document}\n\nWhat did they decide?", "long_context", "x/meetings:a.jsonl"),
            Row(f"Summarise the plot.\n\n{document}", "long_context", "x/stories:b.jsonl"),
            Row(document + "\n\nshort", "creative", "x/y:z")]
    short = shortened_documents(rows)
    assert [r.source for r in short] == ["x/meetings:a.jsonl", "x/stories:b.jsonl"]  # same source: held out with it
    assert short[0].text.endswith("\n\nWhat did they decide?") and short[1].text.startswith("Summarise the plot.")
    assert all(4_000 <= len(r.text) <= 25_100 and r.label == "long_context" for r in short)
    assert shortened_documents(rows) == short  # the cut point is a hash, not a random draw


def test_own_corpus_rows_are_well_formed() -> None:
    data = Path(__file__).resolve().parents[1] / "classifiers" / "data"
    rows = [json.loads(line) for path in sorted(data.glob("*.jsonl")) for line in path.open(encoding="utf-8")]
    assert len(rows) >= 500
    for row in rows:
        assert set(row) == {"text", "label", "source"} and row["source"].startswith("model-router/")
    per_label: dict[str, set[str]] = {}
    for row in rows:
        per_label.setdefault(row["label"], set()).add(row["source"])
    assert all(len(sources) >= 2 for sources in per_label.values())  # each label mixes several styles


def test_floor_check_calibrates_on_half_the_sources_and_measures_on_the_other() -> None:
    # Four sources; on each, half the rows are confidently right, half have flat logits (the argmax,
    # label 0, is wrong; confidence 1/7 at any temperature). Each half's fitted temperature keeps the
    # confident rows confident, so the other half's answers accepted at 0.7 are exactly those.
    n, k = 160, len(TEXT_LABELS)
    confident = np.arange(n) % 2 == 0
    y = np.where(confident, np.arange(n) % k, 1 + np.arange(n) % (k - 1))
    oof = np.zeros((n, k))
    oof[confident, y[confident]] = 8.0
    enc = Encoded(counts=[{}] * n, dense=np.zeros((n, 1)), tokens=np.zeros(n, dtype=np.intp), y=y,
                  groups=[f"source-{i % 4}" for i in range(n)], sources=[f"source-{i % 4}" for i in range(n)],
                  wide=np.ones(n, dtype=np.bool_))  # every row may be decomposable: only the floor is tested
    check = floor_check(oof, enc, 0.7)
    assert [h["rows"] for h in check["halves"]] == [80, 80]
    assert check["coverage"] == 0.5 and check["accuracy"] == 1.0
    assert all(h["temperature"] < 4.0 for h in check["halves"])
