"""The wide-work evidence that the model's `decomposable` needs (router/classifier/wide_work.py), and
its use in the decision: fresh prompts, written for these tests."""

from __future__ import annotations

import numpy as np
import pytest

from router.classifier import wide_work
from router.classifier.model import model_choice


@pytest.mark.parametrize("text", [
    "For each of the Nordic countries, find the parental-leave policy and its uptake by fathers.",
    "Compare these 14 password managers on price, audits and family plans.",
    "Profile the 20 largest container ports: throughput, owner, automation level.",
    "Write a research report on how coastal cities are funding sea walls.",
    "请分别介绍这几家新能源车企的电池技术路线。",
    "Vergleiche die zehn größten Reedereien nach Flottengröße und Emissionen.",
    "Look into:\n- Lisbon\n- Porto\n- Madrid\n- Valencia\nrent, salaries, nightlife",
    "Snowflake, BigQuery, Redshift, Databricks and ClickHouse: pricing models side by side",
    "How do ferry operators price cabins? Cover at least twelve routes in the Baltic.",
    "Rank the top-20 open-source CAD tools by community activity.",
])
def test_wide_work_is_recognised(text: str) -> None:
    assert wide_work.evidence(text) is not None


@pytest.mark.parametrize("text", [
    "Summarise the main causes of the 1929 stock market crash.",
    "Explain the five main reasons the Ming dynasty collapsed.",
    "Compare Python and Go for a command-line tool.",
    "Traduis en anglais : Le conseil a publié son bilan hier soir.",
    "What is the capital of Australia?",
])
def test_one_topic_is_not_wide_work(text: str) -> None:
    assert wide_work.evidence(text) is None


def test_the_models_decomposable_without_evidence_gives_the_runner_up() -> None:
    probs = {"simple": 0.30, "reasoning": 0.25, "decomposable": 0.40, "creative": 0.05}
    assert model_choice(probs, "Summarise the main causes of the 1929 stock market crash.") == "simple"
    assert model_choice(probs, "Summarise the causes of each of the last five recessions.") == "decomposable"
    # Any other label stands as the model gave it, evidence or not.
    others = {"simple": 0.2, "reasoning": 0.7, "decomposable": 0.1}
    assert model_choice(others, "compare these 9 laptops") == "reasoning"


def test_training_evaluation_applies_the_same_rule() -> None:
    # train.decide is what leave-one-source-out, calibration and the floor table count: the same rule,
    # over arrays. Rows: decomposable on top without evidence, with evidence, and over the long-context rule.
    from router.classifier.train import LONG_CONTEXT_TOKENS, TEXT_LABELS, decide

    probs = np.full((3, len(TEXT_LABELS)), 0.01)
    probs[:, TEXT_LABELS.index("decomposable")] = 0.6
    probs[:, TEXT_LABELS.index("reasoning")] = 0.3
    tokens = np.asarray([100, 100, LONG_CONTEXT_TOKENS], dtype=np.intp)
    wide = np.asarray([False, True, False])
    assert [TEXT_LABELS[i] for i in decide(probs, tokens, wide)] == ["reasoning", "decomposable", "long_context"]
