"""`TaskClassifier`: structural rules first, then a calibrated linear model over terms and structure.

Decision order (each step is plain and testable):
1. an image or video part anywhere in the chat      -> vision       (a text-only model cannot serve it)
2. tools attached, or tool turns in the chat        -> agentic
3. estimated input tokens >= long_context threshold -> long_context (a supplied document)
4. otherwise the learned model; its `decomposable` stands only with evidence of wide work in the text
   (`wide_work.evidence`: many parts or a research-report ask), else its runner-up label is answered;
   below `confidence_floor` the `fallback` label is returned.
The model's probabilities are computed in every case so callers can log them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Final

import numpy as np

from router.classifier import artifact, estimates, wide_work
from router.classifier.artifact import Artifact, ClassifierArtifactError
from router.classifier.features import (
    LEXICONS,
    RequestView,
    lexicon_features,
    lexicon_of,
    structure,
    view_of,
    weighted_terms,
)
from router.taxonomy import TASK_TYPES

STRUCTURAL_LABELS: Final = ("vision",)


@dataclass(frozen=True, slots=True)
class Classification:
    task_type: str  # one of the 8 task types
    confidence: float  # calibrated probability of task_type (1.0 for a structural rule)
    probabilities: dict[str, float]  # every text label -> probability
    answer_length: str  # "short" | "medium" | "long"
    subtasks: int  # estimated independent subtasks (>= 1)
    input_tokens: int  # cheap estimate of prompt tokens (all messages)
    rule: str | None  # structural rule that decided, e.g. "vision: image part", else None
    # Which path chose task_type: "model" (the learned model) or "rule" (a structural rule or the
    # confidence floor). The gateway may overwrite it with "header" (client-forced) or "cascade".
    label_source: str = "model"


class TaskClassifier:
    """Load once at startup (`TaskClassifier.load()`), then call `classify()` per request."""

    def __init__(self, model: Artifact) -> None:
        self._model = model
        self._labels = model.labels
        # Everything the hot path touches is laid out once here, so a request costs one dict look-up per
        # term (at C speed, through map) and about ten numpy calls whatever its length: a Python loop per
        # term, not the arithmetic, was most of the time (counted with valgrind: numpy converts a Python
        # object in ~300 instructions, a Python loop iteration over a term costs ~3,000).
        # Table rows: every vocabulary term, every lexicon word outside the vocabulary, then a zero row
        # that every other term is pointed at. Columns: idf x the term's weights (one per label), idf
        # squared (the TF-IDF norm), one indicator per lexicon, zero padding to 16 (two cache lines).
        # One matmul of (log1p(count), log1p(count)^2, count) with the gathered rows gives the
        # unnormalised logits, the squared norm and the lexicon counts together.
        labels = len(model.labels)
        vocabulary = set(model.terms)
        outside = dict.fromkeys(word for words in LEXICONS.values() for word in words if word not in vocabulary)
        keys = [*model.terms, *outside]
        columns = max(16, labels + 1 + len(LEXICONS))
        table = np.zeros((len(keys) + 1, columns), dtype=np.float64)
        idf = np.asarray(model.idf, dtype=np.float64)
        table[: len(model.terms), :labels] = idf[:, None] * np.asarray(model.coef, dtype=np.float64)
        table[: len(model.terms), labels] = idf * idf
        for row, term in enumerate(keys):
            # In the vocabulary, a word two lexicons list counts for the last (lexicon_of); outside it, for
            # the first (as the per-term index this table replaced did).
            lexicon = lexicon_of(term) if row < len(model.terms) else _first_lexicon(term)
            if lexicon is not None:
                table[row, labels + 1 + lexicon] = 1.0
        self._row = {term: row for row, term in enumerate(keys)}
        self._zero_row = len(keys)
        self._table = table
        self._labels_n = labels
        self._dense_weights = np.ascontiguousarray(model.dense_coef, dtype=np.float64)
        self._intercept = model.intercept.astype(np.float64).tolist()
        self._inverse_temperature = 1.0 / model.temperature
        self._long_context_tokens = int(model.card["thresholds"]["long_context_tokens"])

    @classmethod
    def load(cls, artifact_dir: Path | None = None) -> TaskClassifier:
        """Read the artifact (default: the packaged `classifiers/model`) and check it against this code
        and the installed libraries; raises ClassifierArtifactError with the fix on any mismatch."""
        return cls(artifact.read(artifact_dir or artifact.default_dir()))

    @property
    def card(self) -> dict[str, Any]:
        return self._model.card

    @property
    def labels(self) -> tuple[str, ...]:
        """The text labels the model predicts (every task type except the structural ones)."""
        return self._labels

    def probabilities(self, view: RequestView) -> dict[str, float]:
        counts = weighted_terms(view)
        n = len(counts)
        rows = np.fromiter(map(self._row.get, counts, repeat(self._zero_row)), np.intp, n)
        weights = np.fromiter(counts.values(), np.float64, n)
        sublinear = np.log1p(weights)  # sublinear TF-IDF, L2-normalised, as in training (train.matrix)
        sums = (np.array((sublinear, sublinear * sublinear, weights)) @ self._table[rows]).tolist()
        k = self._labels_n
        norm = math.sqrt(sums[1][k])
        scale = 1.0 / norm if norm > 0.0 else 0.0  # no known term: the TF-IDF part is all zeros
        lexicon_hits = sums[2][k + 1 : k + 1 + len(LEXICONS)]
        dense = [*structure(view), *lexicon_features(lexicon_hits)]  # the order of features.dense
        dense_logits = (np.asarray(dense) @ self._dense_weights).tolist()
        scaled = [(z * scale + d + b) * self._inverse_temperature
                  for z, d, b in zip(sums[0][:k], dense_logits, self._intercept, strict=True)]
        top = max(scaled)
        exp = [math.exp(z - top) for z in scaled]
        total = sum(exp)
        return {label: e / total for label, e in zip(self._labels, exp, strict=True)}

    def classify(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[Any] | None = None,
        confidence_floor: float = 0.0,
        fallback: str = "reasoning",
    ) -> Classification:
        if fallback not in TASK_TYPES:
            raise ValueError(f"fallback {fallback!r} is not a task type (task types: {', '.join(TASK_TYPES)})")
        view = view_of(messages)
        probs = self.probabilities(view)
        rule: str | None = None
        if view.image_parts or view.video_parts:
            task_type, rule = "vision", "vision: image part" if view.image_parts else "vision: video part"
        elif tools:
            task_type, rule = "agentic", "agentic: tools attached"
        elif view.tool_turns:
            task_type, rule = "agentic", "agentic: tool turns in the chat"
        elif view.input_tokens >= self._long_context_tokens:
            task_type = "long_context"
            rule = f"long_context: {view.input_tokens} input tokens >= {self._long_context_tokens}"
        else:
            task_type = model_choice(probs, view.last_user)
        if rule is not None:
            confidence = 1.0
        elif probs[task_type] < confidence_floor:
            rule = f"floor: {task_type} at {probs[task_type]:.2f} < {confidence_floor:.2f}, fell back to {fallback}"
            task_type = fallback
            confidence = probs.get(fallback, 0.0)
        else:
            confidence = probs[task_type]
        n_subtasks = estimates.subtasks(view.last_user)
        return Classification(
            task_type=task_type,
            confidence=confidence if math.isfinite(confidence) else 0.0,
            probabilities=probs,
            answer_length=estimates.answer_length(view.last_user, task_type, n_subtasks),
            subtasks=n_subtasks,
            input_tokens=view.input_tokens,
            rule=rule,
            label_source="model" if rule is None else "rule",
        )


def model_choice(probs: dict[str, float], text: str) -> str:
    """The learned model's label: the most probable one, except that `decomposable` (Agent Swarm, the
    costliest route to get wrong) needs wide-work evidence in the text; without it the runner-up."""
    ranked = sorted(probs, key=probs.__getitem__, reverse=True)
    if ranked[0] == "decomposable" and len(ranked) > 1 and wide_work.evidence(text) is None:
        return ranked[1]
    return ranked[0]


def _first_lexicon(word: str) -> int | None:
    return next((i for i, words in enumerate(LEXICONS.values()) if word in words), None)


__all__ = ["Classification", "ClassifierArtifactError", "TaskClassifier"]
