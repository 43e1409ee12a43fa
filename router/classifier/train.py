"""Train the task classifier and write its artifact and card, deterministically.

Data: the shared public corpus (`<repo>/../shared/datasets/routing-train.jsonl`, or `ROUTER_TRAIN_DATA`,
or `--data`) plus our own prompts in `classifiers/data/*.jsonl`. Rows are sorted before anything else,
every random choice uses a fixed seed, and arrays are stored as float32, so two runs write the same
`weights.npz` and `vocab.json` byte for byte.

Evaluation that matters is source-held-out: each label's sources are spread over K folds, a fold's
sources are never seen in training, and every label keeps at least one source in training. The
random-split number is reported only for contrast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from router.classifier import artifact
from router.classifier.features import DENSE_NAMES, FEATURES_VERSION, dense, view_of, weighted_terms
from router.classifier.model import STRUCTURAL_LABELS
from router.taxonomy import TASK_TYPES

SEED: Final = 20261129
FOLDS: Final = 3
MIN_DF: Final = 2
MAX_TERMS: Final = 120_000
C: Final = 8.0
MAX_ITER: Final = 200
TOL: Final = 1e-3
# Rule threshold: a request this long is a supplied document whatever it asks; shorter documents
# are left to the model, which sees the length features.
LONG_CONTEXT_TOKENS: Final = 8000
FLOOR_TARGET_PRECISION: Final = 0.95
TEXT_LABELS: Final = tuple(t for t in TASK_TYPES if t not in STRUCTURAL_LABELS)
# BFCL rows are function-calling queries whose tool list the dataset dropped ("who is park ji sung"):
# agentic only because of tools the gateway sees structurally. As text they teach "factual question =
# agentic", so they are kept out of the text model and reported separately.
STRUCTURAL_SOURCES: Final = ("ShishirPatil/gorilla:",)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    label: str
    source: str


@dataclass(frozen=True, slots=True)
class Encoded:
    """Rows featurized once: term counts, dense features, token estimates, labels, source groups."""

    counts: list[Mapping[str, float]]
    dense: FloatArray
    tokens: IntArray
    y: IntArray
    groups: list[str]
    sources: list[str]


@dataclass(frozen=True, slots=True)
class Fitted:
    terms: list[str]
    idf: FloatArray
    coef: FloatArray
    dense_coef: FloatArray
    intercept: FloatArray


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_data_path() -> Path:
    env = os.environ.get("ROUTER_TRAIN_DATA")
    return Path(env) if env else repo_root().parent / "shared" / "datasets" / "routing-train.jsonl"


def own_data_dir() -> Path:
    return repo_root() / "classifiers" / "data"


def read_jsonl(path: Path) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("label") not in TEXT_LABELS or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{number}: needs a string 'text' and a 'label' in {TEXT_LABELS}")
            rows.append(Row(record["text"], record["label"], str(record.get("source", path.name))))
    return rows


def source_group(source: str, level: str = "file") -> str:
    """The unit held out together. "file": the dataset's own source (repository:file, subset tag dropped),
    and each of our own subsets. "repository": stricter, every file of a repository together, except
    Qwen2.5-Math, which bundles three unrelated datasets (svamp, aqua, college_math)."""
    repo, _, rest = source.partition(":")
    if not rest:
        return source
    if level == "file" or repo == "QwenLM/Qwen2.5-Math":
        return source.partition("#")[0]
    return repo


def encode(rows: Sequence[Row]) -> Encoded:
    counts, dense_rows, tokens = [], [], []
    for row in rows:
        view = view_of([{"role": "user", "content": row.text}])
        counts.append(weighted_terms(view))
        dense_rows.append(dense(view))
        tokens.append(view.input_tokens)
    return Encoded(
        counts=counts,
        dense=np.asarray(dense_rows, dtype=np.float64),
        tokens=np.asarray(tokens, dtype=np.intp),
        y=np.asarray([TEXT_LABELS.index(r.label) for r in rows], dtype=np.intp),
        groups=[source_group(r.source) for r in rows],
        sources=[r.source for r in rows],
    )


def sample_weights(enc: Encoded, idx: IntArray) -> FloatArray:
    """Every label weighs the same; inside a label a source weighs by sqrt(rows), so one big benchmark
    does not drown the others (the model should learn the task, not the benchmark's voice)."""
    sizes = Counter((int(enc.y[i]), enc.groups[i]) for i in idx)
    label_mass: dict[int, float] = {}
    for (label, _), n in sizes.items():
        label_mass[label] = label_mass.get(label, 0.0) + math.sqrt(n)
    weights = np.asarray(
        [math.sqrt(sizes[(int(enc.y[i]), enc.groups[i])]) / label_mass[int(enc.y[i])]
         / sizes[(int(enc.y[i]), enc.groups[i])] for i in idx]
    )
    return np.asarray(weights * (len(idx) / weights.sum()), dtype=np.float64)


def matrix(enc: Encoded, idx: IntArray, index: dict[str, int], idf: FloatArray) -> sp.csr_matrix:
    data: list[float] = []
    cols: list[int] = []
    indptr = [0]
    for i in idx:
        row_cols, row_vals = [], []
        for term, count in enc.counts[i].items():
            j = index.get(term)
            if j is not None:
                row_cols.append(j)
                row_vals.append(math.log1p(count) * idf[j])
        norm = math.sqrt(sum(v * v for v in row_vals)) or 1.0
        cols.extend(row_cols)
        data.extend(v / norm for v in row_vals)
        indptr.append(len(cols))
    text = sp.csr_matrix((data, cols, indptr), shape=(len(idx), len(index)))
    return sp.hstack([text, sp.csr_matrix(enc.dense[idx])], format="csr")


def fit(enc: Encoded, idx: IntArray) -> Fitted:
    df: Counter[str] = Counter()
    for i in idx:
        df.update(enc.counts[i].keys())
    kept = sorted((t for t, n in df.items() if n >= MIN_DF), key=lambda t: (-df[t], t))[:MAX_TERMS]
    terms = sorted(kept)
    index = {t: j for j, t in enumerate(terms)}
    n = len(idx)
    idf = np.asarray([math.log((1 + n) / (1 + df[t])) + 1.0 for t in terms])
    x = matrix(enc, idx, index, idf)
    clf = LogisticRegression(C=C, max_iter=MAX_ITER, tol=TOL)
    clf.fit(x, enc.y[idx], sample_weight=sample_weights(enc, idx))
    coef = np.zeros((len(TEXT_LABELS), x.shape[1]))
    intercept = np.full(len(TEXT_LABELS), -30.0)  # a label absent from training is never predicted
    for k, label in enumerate(clf.classes_):
        coef[label] = clf.coef_[k]
        intercept[label] = clf.intercept_[k]
    # Store exactly what inference will use (float32) so evaluation measures the shipped numbers.
    return Fitted(
        terms=terms,
        idf=idf.astype(np.float32).astype(np.float64),
        coef=coef[:, : len(terms)].T.astype(np.float32).astype(np.float64),
        dense_coef=coef[:, len(terms):].T.astype(np.float32).astype(np.float64),
        intercept=intercept.astype(np.float32).astype(np.float64),
    )


def logits(model: Fitted, enc: Encoded, idx: IntArray) -> FloatArray:
    x = matrix(enc, idx, {t: j for j, t in enumerate(model.terms)}, model.idf)
    weights = np.vstack([model.coef, model.dense_coef])
    return np.asarray(x @ weights) + model.intercept


def softmax(z: FloatArray, temperature: float = 1.0) -> FloatArray:
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def decide(probs: FloatArray, tokens: IntArray) -> IntArray:
    """The classifier's decision for text-only rows: the long-context rule, then the model."""
    pred = probs.argmax(axis=1)
    pred[tokens >= LONG_CONTEXT_TOKENS] = TEXT_LABELS.index("long_context")
    return np.asarray(pred, dtype=np.intp)


def held_out_folds(enc: Encoded) -> list[IntArray]:
    """Assign each (label, source group) to one of FOLDS folds, largest first, to the fold holding the
    fewest rows of that label; a label with at least two groups always keeps one in training."""
    fold_of: dict[tuple[int, str], int] = {}
    sizes = Counter(zip(enc.y.tolist(), enc.groups, strict=True))
    for label in range(len(TEXT_LABELS)):
        groups = sorted(((n, g) for (lab, g), n in sizes.items() if lab == label), key=lambda t: (-t[0], t[1]))
        if len(groups) < 2:
            raise ValueError(f"label {TEXT_LABELS[label]!r} needs rows from at least two sources")
        load = [0] * FOLDS
        for n, group in groups:
            fold = min(range(FOLDS), key=lambda f: (load[f], f))
            fold_of[(label, group)] = fold
            load[fold] += n
    assignment = np.asarray([fold_of[(int(y), g)] for y, g in zip(enc.y, enc.groups, strict=True)])
    return [np.flatnonzero(assignment == f) for f in range(FOLDS)]


def metrics(y: IntArray, pred: IntArray) -> dict[str, Any]:
    k = len(TEXT_LABELS)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_label = {}
    f1s = []
    for j, label in enumerate(TEXT_LABELS):
        tp = int(confusion[j, j])
        precision = tp / max(int(confusion[:, j].sum()), 1)
        recall = tp / max(int(confusion[j].sum()), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_label[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                            "f1": round(f1, 4), "support": int(confusion[j].sum())}
    return {
        "macro_f1": round(float(np.mean(f1s)), 4),
        "accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 4),
        "per_label": per_label,
        "confusion_matrix": {"labels": list(TEXT_LABELS), "rows_true_cols_predicted": confusion.tolist()},
    }


def expected_calibration_error(probs: FloatArray, y: IntArray, bins: int = 15) -> float:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi)
        if mask.any():
            total += mask.mean() * abs(float(correct[mask].mean()) - float(confidence[mask].mean()))
    return round(float(total), 4)


def fit_temperature(z: FloatArray, y: IntArray) -> float:
    """Temperature scaling on held-out logits: one scalar that minimises the negative log-likelihood."""
    grid = np.round(np.arange(0.25, 4.0001, 0.05), 2)
    nll = [-float(np.log(softmax(z, float(t))[np.arange(len(y)), y] + 1e-12).mean()) for t in grid]
    return float(grid[int(np.argmin(nll))])


def floor_table(probs: FloatArray, y: IntArray) -> tuple[float, list[dict[str, float]]]:
    """Coverage and accuracy of the model's accepted answers at several confidence floors; the suggested
    floor is the lowest at which accepted answers reach FLOOR_TARGET_PRECISION."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    table, suggested = [], 1.0
    for floor in np.round(np.arange(0.3, 0.951, 0.05), 2):
        accepted = confidence >= floor
        accuracy = float(correct[accepted].mean()) if accepted.any() else 1.0
        table.append({"floor": float(floor), "coverage": round(float(accepted.mean()), 4),
                      "accuracy": round(accuracy, 4)})
        if accuracy >= FLOOR_TARGET_PRECISION and suggested == 1.0:
            suggested = float(floor)
    return suggested, table


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_rows(data_path: Path, own_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    files = [data_path, *sorted(own_dir.glob("*.jsonl"))]
    rows: list[Row] = []
    hashes = {}
    for path in files:
        rows.extend(read_jsonl(path))
        key = f"shared/datasets/{path.name}" if path == data_path else f"classifiers/data/{path.name}"
        hashes[key] = file_sha256(path)
    unique = {(r.text.strip(), r.label, r.source) for r in rows}
    return sorted((Row(*u) for u in unique), key=lambda r: (r.label, r.source, r.text)), hashes


def held_out_evaluation(enc: Encoded, level: str, log: Any) -> tuple[dict[str, Any], FloatArray]:
    """Source-held-out metrics at one grouping level; also returns the held-out logits."""
    groups = enc.groups if level == "file" else [source_group(s, level) for s in enc.sources]
    folds = held_out_folds(Encoded(enc.counts, enc.dense, enc.tokens, enc.y, groups, enc.sources))
    oof = np.zeros((len(enc.y), len(TEXT_LABELS)))
    for test in folds:
        train_idx = np.setdiff1d(np.arange(len(enc.y)), test)
        oof[test] = logits(fit(enc, train_idx), enc, test)
    result = metrics(enc.y, decide(softmax(oof), enc.tokens))
    log(f"source-held-out ({level}) macro-F1 {result['macro_f1']}")
    method = (f"{FOLDS} folds; each label's sources (grouped by {level}) spread over the folds, a fold's "
              "sources unseen in training, every label keeps at least one source in training")
    return {"method": method, **result}, oof


def train(
    data_path: Path | None = None, output_dir: Path | None = None, *, evaluate: bool = True, log: Any = print
) -> dict[str, Any]:
    """Fit, evaluate (unless `evaluate=False`: same artifact files, card without metrics), write; returns
    the card."""
    started = time.perf_counter()
    data_path = data_path or default_data_path()
    output_dir = output_dir or artifact.default_dir()
    previous_latency = artifact.read_card_field(output_dir, "latency_us")
    all_rows, hashes = load_rows(data_path, own_data_dir())
    rows = [r for r in all_rows if not r.source.startswith(STRUCTURAL_SOURCES)]
    structural_rows = [r for r in all_rows if r.source.startswith(STRUCTURAL_SOURCES)]
    log(f"read {len(all_rows)} rows from {data_path} and {own_data_dir()}; "
        f"{len(structural_rows)} tool-call rows kept out of the text model")
    enc = encode(rows)
    evaluation: dict[str, Any] = {}
    calibration: dict[str, Any] = {"method": "temperature scaling fitted on source-held-out logits",
                                   "temperature": 1.0}
    floor, floors = 0.0, list[dict[str, float]]()
    if evaluate:
        evaluation["source_held_out"], oof = held_out_evaluation(enc, "file", log)
        evaluation["source_held_out_by_repository"], _ = held_out_evaluation(enc, "repository", log)
        temperature = fit_temperature(oof, enc.y)
        probs = softmax(oof, temperature)
        calibration.update(temperature=temperature, ece_before=expected_calibration_error(softmax(oof), enc.y),
                           ece_after=expected_calibration_error(probs, enc.y))
        floor, floors = floor_table(probs, enc.y)
        evaluation["random_split"] = random_split_evaluation(enc, temperature)
        log(f"random-split macro-F1 {evaluation['random_split']['macro_f1']}")

    final = fit(enc, np.arange(len(rows)))
    if evaluate and structural_rows:
        z = logits(final, encode(structural_rows), np.arange(len(structural_rows)))
        share = float((z.argmax(axis=1) == TEXT_LABELS.index("agentic")).mean())
        evaluation["tool_call_rows_as_text"] = {
            "sources": list(STRUCTURAL_SOURCES), "rows": len(structural_rows),
            "share_predicted_agentic_without_tools": round(share, 4),
            "note": "not trained on; in production these requests carry tools and the rule labels them agentic"}
    card = {
        "format": artifact.FORMAT,
        "features_version": FEATURES_VERSION,
        "labels": list(TEXT_LABELS),
        "structural_labels": list(STRUCTURAL_LABELS),
        "library_versions": artifact.installed_versions(),
        "python": platform.python_version(),
        "model": {"kind": "multinomial logistic regression (scikit-learn lbfgs), served as plain float32 arrays",
                  "C": C, "terms": len(final.terms), "min_df": MIN_DF, "dense_features": list(DENSE_NAMES),
                  "seed": SEED},
        "data": {"files_sha256": hashes, "rows": len(rows),
                 "excluded_tool_call_rows": len(structural_rows),
                 "rows_per_label": {lab: int((enc.y == j).sum()) for j, lab in enumerate(TEXT_LABELS)},
                 "rows_per_source": dict(sorted(Counter(r.source for r in rows).items()))},
        "evaluation": evaluation,
        "calibration": calibration,
        "thresholds": {
            "long_context_tokens": LONG_CONTEXT_TOKENS,
            "suggested_confidence_floor": floor,
            "suggested_floor_target_accuracy": FLOOR_TARGET_PRECISION,
            "floors_on_held_out": floors,
        },
    }
    card = artifact.write(output_dir, terms=final.terms, card=card, arrays={
        "coef": final.coef.astype(np.float32), "dense_coef": final.dense_coef.astype(np.float32),
        "idf": final.idf.astype(np.float32), "intercept": final.intercept.astype(np.float32)})
    card["training_seconds"] = round(time.perf_counter() - started, 1)
    if previous_latency is not None:  # measured by benchmarks/bench_classifier.py --update-card
        card["latency_us"] = previous_latency
    artifact.write_card(output_dir, card)
    log(f"wrote {output_dir} in {card['training_seconds']} s")
    return card


def random_split_evaluation(enc: Encoded, temperature: float) -> dict[str, Any]:
    """A stratified 80/20 random split, for contrast: sources leak across it, so it flatters the model."""
    rng = np.random.default_rng(SEED)
    test_mask = np.zeros(len(enc.y), dtype=bool)
    for label in range(len(TEXT_LABELS)):
        members = np.flatnonzero(enc.y == label)
        test_mask[rng.choice(members, size=max(1, len(members) // 5), replace=False)] = True
    test = np.flatnonzero(test_mask)
    probs = softmax(logits(fit(enc, np.flatnonzero(~test_mask)), enc, test), temperature)
    return {"method": "stratified 80/20, one split (for contrast only)",
            **metrics(enc.y[test], decide(probs, enc.tokens[test]))}
