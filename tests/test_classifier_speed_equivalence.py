"""The optimised classifier against a frozen copy of the code it replaced (tests/classifier_reference.py).

A speed change must not be a model change: on a few thousand real rows (../shared/datasets and
classifiers/data), chats built from them (system prompts, history, tool turns, images) and crafted edge
cases, every output must match the reference: probabilities to 1e-9, task type, rule, answer length,
subtasks, input tokens; and the training path's features (`weighted_terms`, `dense`) must match too,
since the same code featurises the training rows.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from router.classifier import TaskClassifier, artifact
from router.classifier import estimates as fast_estimates
from router.classifier import features as fast
from tests import classifier_reference as reference

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
OWN_DATA = REPO / "classifiers" / "data"
ROWS_PER_SHARED_FILE = 1500  # evenly spread over each file: every source, every length


def _texts(path: Path, limit: int | None = None) -> list[str]:
    rows = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit is None or len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def _shared_texts() -> list[str]:
    files = sorted(SHARED.glob("*.jsonl")) if SHARED.is_dir() else []
    if not files:
        pytest.skip(f"{SHARED} is absent: the shared datasets are checked out beside the repo in CI")
    return [text for path in files for text in _texts(path, ROWS_PER_SHARED_FILE)]


def _own_texts() -> list[str]:
    return [text for path in sorted(OWN_DATA.glob("*.jsonl")) for text in _texts(path)]


def _chats(texts: list[str]) -> Iterator[list[dict[str, Any]]]:
    """Chats of real text in every shape the view reads: a system prompt, history, tool turns,
    content-part lists, images, no user turn at all."""
    n = len(texts)
    for i in range(0, n, 7):
        a, b, c, d = texts[i], texts[(i + 1) % n], texts[(i + 2) % n], texts[(i + 3) % n]
        yield [{"role": "system", "content": a}, {"role": "user", "content": b},
               {"role": "assistant", "content": c}, {"role": "user", "content": d}]
        yield [{"role": "developer", "content": b}, {"role": "user", "content": [{"type": "text", "text": c}]}]
        yield [{"role": "user", "content": a}, {"role": "assistant", "content": b}, {"role": "user", "content": c},
               {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]},
               {"role": "tool", "content": d}, {"role": "user", "content": a[:200]}]
        yield [{"role": "user", "content": [{"type": "text", "text": d},
                                            {"type": "image_url", "image_url": {"url": "data:,"}}]}]
        yield [{"role": "assistant", "content": c}]


CRAFTED: list[Any] = [
    [],
    None,
    "not a list",
    [{"role": "user", "content": ""}],
    [{"role": "user", "content": "   \n  "}],
    [{"role": "user", "content": "?"}],
    [{"role": "user", "content": "a"}],
    [{"role": "user", "content": "1234567890"}],
    [{"role": "user", "content": "请分别调研以下12家咖啡连锁品牌的门店数量、客单价、融资情况和扩张策略，并做对比。"}],
    [{"role": "user", "content": "日本語のテキストを要約してください。" * 200}],
    [{"role": "user", "content": "写一首诗" + "。" * 50 + "\n\n" + "长" * 5000 + "\n\n这是什么？"}],
    [{"role": "user", "content": "x" * 100_000}],
    [{"role": "user", "content": ("The quick brown fox. " * 5000) + "\n\nWhat did the fox do?"}],
    [{"role": "user", "content": "def f(x):\n    return x + 1\n" * 3000 + "why does this fail?"}],
    [{"role": "user", "content": "Traceback (most recent call last):\n  File \"a.py\", line 1\nValueError: x\n" * 50}],
    [{"role": "user", "content": "Solve $x^2 + 3x = 10$ and \\frac{1}{2} ≤ y ≥ π, 2+2=4, 3 * 4 = 12"}],
    [{"role": "user", "content": "1. one\n2. two\n- three\n* four\n(一) 五\na) six\n\nDo each of these 20 things?"}],
    [{"role": "user", "content": "Compare AWS, Azure, GCP and Oracle; top-10 tips; in 300 words; briefly."}],
    [{"role": "user", "content": "Ünïcödé ÄÖÜ ß déjà vu — «quotes» ‘single’ “double” … ¿qué? ¡sí! ١٢٣ ٤٥ ؟ ;"}],
    [{"role": "user", "content": "emoji 🤖🚀 and zero-width\u200b joiner\u200d and NUL\x00 and \x02\x03 markers"}],
    [{"role": "user", "content": "Mixed 中文 and English: 打开 settings, 帮我 open my cart? 谢谢！"}],
    [{"role": "user", "content": "a" * 1599 + "中"}],
    [{"role": "user", "content": "中" * 441}],
    [{"role": "user", "content": "中" * 440}],
    [{"role": "user", "content": "x" * 1600}],
    [{"role": "user", "content": "x" * 1601}],
    [{"role": "user", "content": "\n" * 3000 + "?"}],
    [{"role": "user", "content": "word\n\n" * 2000}],
    [{"role": "system", "content": "You are terse. " * 100}, {"role": "user", "content": "hi"}],
    [{"role": "system", "content": "sys"}],
    [{"role": "user", "content": [{"type": "input_text", "text": "part one"}, "bare string part",
                                  {"type": "output_text", "text": "part two"}, {"type": "input_audio"},
                                  {"type": "video_url"}, {"type": "text", "text": 5}, 7, None]}],
    [{"role": "user", "content": {"odd": "dict content"}}, {"role": "user", "content": 3.5}, "not a message"],
    [{"role": "function", "content": "result"}, {"role": "user", "content": "and now?"}],
    [{"role": "assistant", "content": "x", "function_call": {"name": "f"}}, {"role": "user", "content": "go"}],
    [{"role": None, "content": "no role"}],
    [{"role": "user", "content": "tab\tseparated\tcolumns\r\nwindows line\r\n\r\nnext para?"}],
    [{"role": "user", "content": "\u037e Greek question; Arabic ؟ and full-width ？ marks"}],
    [{"role": "user", "content": "x²+y³=√z ∑∫ ≠ done"}],
    [{"role": "user", "content": "Pick tea, coffee and or juice, water, milk or and soda; a, b and c, d or e or f"}],
    [{"role": "user", "content": "Compare red, blue and green; cats or dogs, fish and birds; x and y and z, w"}],
    [{"role": "user", "content": "odd\x1cspaces\x1dand\x1e\x1fseparators\x0bvt\x0cff\u00a0nbsp"
                                 "\u3000ideo\u2003em\u2028ls"}],
    [{"role": "user", "content": "ASCII then non-ASCII punctuation: a，b。c？d！e：f；g、h（i）j《k》l“m”n‘o’p…q"}],
    [{"role": "user", "content": "\n\nx = 1\n\n  y;\n\n\nz\n= 2\nfoo(bar)\n}\n  \n- item\n\n  - nested\n1. one\n\n"}],
    [{"role": "user", "content": "a;\n\n  x = 1\nclass A {\n  return f(x)  \n\n\n} \n" * 40}],
    [{"role": "user", "content": "ŞŢİ İstanbul ǅ ǈ ﬁ ﬀ ẞ K Ω"}],  # characters whose lower() changes length
]


@pytest.fixture(scope="module")
def models() -> tuple[TaskClassifier, reference.ReferenceModel, int]:
    loaded = artifact.read(artifact.default_dir())
    threshold = int(loaded.card["thresholds"]["long_context_tokens"])
    return TaskClassifier(loaded), reference.ReferenceModel(loaded), threshold


def _assert_same(models: tuple[TaskClassifier, reference.ReferenceModel, int], messages: Any, **kw: Any) -> None:
    classifier, oracle, threshold = models
    got = asdict(classifier.classify(messages, **kw))
    want = oracle.classify(messages, long_context_tokens=threshold, **kw)
    got_probs, want_probs = got.pop("probabilities"), want.pop("probabilities")
    assert list(got_probs) == list(want_probs)
    for label, p in want_probs.items():
        assert math.isclose(got_probs[label], p, rel_tol=0.0, abs_tol=1e-9), (label, got_probs[label], p, messages)
    assert math.isclose(got.pop("confidence"), want.pop("confidence"), rel_tol=0.0, abs_tol=1e-9)
    assert got == want, messages
    # The training path: the same features from the same view.
    view, old_view = fast.view_of(messages), reference.view_of(messages)
    assert asdict(view) == asdict(old_view)
    counts, old_counts = fast.weighted_terms(view), reference.weighted_terms(old_view)
    assert counts.keys() == old_counts.keys()
    for term, count in old_counts.items():
        assert math.isclose(counts[term], count, rel_tol=1e-12, abs_tol=1e-12), term
    assert fast.dense(view, counts) == pytest.approx(reference.dense(old_view, old_counts), rel=0, abs=1e-12)
    assert fast.structure(view) == reference.structure(old_view)
    for text in (view.last_user, view.system, *view.history):
        assert fast.terms(text) == reference.terms(text)
        assert fast.terms(text, bounds=True) == reference.terms(text, bounds=True)
    assert fast_estimates.subtasks(view.last_user) == reference.subtasks(view.last_user)


def test_rows_of_the_shared_datasets(models: tuple[TaskClassifier, reference.ReferenceModel, int]) -> None:
    texts = _shared_texts()
    assert len(texts) >= 2000
    for text in texts:
        _assert_same(models, [{"role": "user", "content": text}])


def test_rows_of_our_own_training_data(models: tuple[TaskClassifier, reference.ReferenceModel, int]) -> None:
    texts = _own_texts()
    assert len(texts) >= 1000
    for text in texts:
        _assert_same(models, [{"role": "user", "content": text}])


def test_chats_built_from_real_rows(models: tuple[TaskClassifier, reference.ReferenceModel, int]) -> None:
    texts = _own_texts() + (_shared_texts()[::3] if SHARED.is_dir() else [])
    for messages in _chats(texts):
        _assert_same(models, messages)


@pytest.mark.parametrize("messages", CRAFTED, ids=range(len(CRAFTED)))
def test_crafted_edge_cases(models: tuple[TaskClassifier, reference.ReferenceModel, int], messages: Any) -> None:
    _assert_same(models, messages)
    _assert_same(models, messages, tools=[{"type": "function"}])
    _assert_same(models, messages, confidence_floor=0.99, fallback="simple")


def test_answer_length_for_every_task_type() -> None:
    samples = ["write a report on 12 家公司", "in one sentence, what is", "a story in 2000 words", "detailed essay",
               "", "Compare AWS, Azure, GCP and Oracle", "x" * 5000]
    for text in samples:
        for task_type in (*reference._BY_TASK, "unknown"):
            for n in (1, 4, 5, 100):
                assert fast_estimates.answer_length(text, task_type, n) == reference.answer_length(text, task_type, n)


@pytest.mark.parametrize("text", ["   \n\n  \n\n", "\n" * 3000])
def test_blank_paragraphs_no_longer_raise(models: tuple[TaskClassifier, reference.ReferenceModel, int],
                                          text: str) -> None:
    """The one intended difference: a turn of blank paragraphs ("  \\n\\n ") made the reference's
    `max()` of paragraph lengths raise ValueError (a 500 for the request); now it has no paragraphs."""
    classifier, oracle, threshold = models
    messages = [{"role": "user", "content": text}]
    with pytest.raises(ValueError, match="empty"):
        oracle.classify(messages, long_context_tokens=threshold)
    result = classifier.classify(messages)
    assert math.isclose(sum(result.probabilities.values()), 1.0)
    assert fast.structure(fast.view_of(messages))[-4:] == [0.0, 0.0, 0.0, 0.0]


def test_line_matches_counts_what_findall_counts() -> None:
    """line_matches replaces findall for the line-anchored patterns; random texts of code-ish pieces,
    long and short lines, blank lines and odd whitespace must give the same count."""
    rng = random.Random(16)
    pieces = ["a", "x", "=", ";", "{", "}", "(", ")", " ", " ", "\n", "\n", "\n\n", "\t", ".", "def ", "return",
              "if (", "\u00a0", "1", "1.", "- ", "* ", "a) ", "（一）", "、", "word " * 30]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.5:
            text = text.replace("x", "x" * rng.randint(1, 200))
        assert fast.line_matches(fast._CODE_LINE, text, fast._CODE_LINE_PLAIN) == len(
            reference._CODE_LINE.findall(text)), text
        assert fast.line_matches(fast._LIST_ITEM, text) == len(reference._LIST_ITEM.findall(text)), text
        assert fast.line_matches(fast_estimates._ITEM, text) == len(reference._ITEM.findall(text)), text
