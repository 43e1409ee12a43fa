"""The failure patterns of issue 17, one small fixture each, written for these tests (not taken from
any dataset): long texts that are not creative, environment commands without tools, puzzles with a
code-like surface or told as a story, non-English math, Chinese prompts of the plain kinds, and the
narrow `simple` label. Each asserts the label the packaged classifier gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.classifier import TaskClassifier

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "classifier"
PATTERNS = [json.loads(line) for line in (FIXTURES / "patterns.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def classifier() -> TaskClassifier:
    return TaskClassifier.load()


def label_of(classifier: TaskClassifier, text: str) -> tuple[str, dict[str, float]]:
    result = classifier.classify([{"role": "user", "content": text}])
    return result.task_type, result.probabilities


@pytest.mark.parametrize("case", PATTERNS, ids=[f"{c['pattern']}: {c['text'][:30]}" for c in PATTERNS])
def test_pattern(classifier: TaskClassifier, case: dict[str, str]) -> None:
    label, probabilities = label_of(classifier, case["text"])
    assert label == case["label"], (case["pattern"], probabilities)


def test_meeting_transcript_to_summarise_is_long_context_not_creative(classifier: TaskClassifier) -> None:
    transcript = (FIXTURES / "meeting_transcript.txt").read_text(encoding="utf-8")
    text = f"{transcript}\n\nSummarise the decisions taken in this meeting and list who owns each action."
    result = classifier.classify([{"role": "user", "content": text}])
    assert 1_500 <= result.input_tokens < 8_000  # below the long_context rule: the model decides
    assert result.rule is None and result.task_type == "long_context", result.probabilities


def test_pasted_file_with_a_question_is_coding_not_creative(classifier: TaskClassifier) -> None:
    module = (FIXTURES / "pasted_module.py.txt").read_text(encoding="utf-8")
    text = ("Here is our booking module. invoice_total sometimes raises a KeyError for old bookings and "
            f"occupancy crashes on an empty list. How should I fix both?\n\n{module}")
    label, probabilities = label_of(classifier, text)
    assert label == "coding", probabilities
