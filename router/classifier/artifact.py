"""The trained artifact on disk: plain arrays, a vocabulary and a card — no pickle anywhere.

Layout of an artifact directory (default `classifiers/model/`):

    weights.npz   coef (terms x labels), dense_coef (features x labels), intercept, idf  — float32
    vocab.json    {"terms": [...]}, index i is row i of coef and idf
    card.json     labels, versions, data hashes, metrics, thresholds, sha256 of the two files above

`weights.npz` is written with fixed zip timestamps and sorted members so that training twice gives
byte-identical files, and read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from router.classifier.features import DENSE_NAMES, FEATURES_VERSION

FORMAT: Final = "model-router/task-classifier@1"
WEIGHTS_FILE: Final = "weights.npz"
VOCAB_FILE: Final = "vocab.json"
CARD_FILE: Final = "card.json"
# Libraries whose version is part of the artifact's identity: numpy reads the arrays, scikit-learn and
# scipy fitted them. The lock file pins all three, so a difference means the environment drifted.
PINNED_LIBRARIES: Final = ("numpy", "scikit-learn", "scipy")
_ARRAYS: Final = ("coef", "dense_coef", "idf", "intercept")
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)

FloatArray = npt.NDArray[np.float32]


class ClassifierArtifactError(RuntimeError):
    """The classifier artifact is missing, damaged, or does not match this code or environment."""


@dataclass(frozen=True, slots=True)
class Artifact:
    labels: tuple[str, ...]  # the text labels, in column order
    terms: tuple[str, ...]
    idf: FloatArray
    coef: FloatArray
    dense_coef: FloatArray
    intercept: FloatArray
    temperature: float
    card: dict[str, Any]


def default_dir() -> Path:
    import classifiers  # the data package; located like this so it works installed or from a clone

    return Path(classifiers.__file__).resolve().parent / "model"


def installed_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in PINNED_LIBRARIES}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(
    directory: Path,
    *,
    terms: list[str],
    arrays: dict[str, FloatArray],
    card: dict[str, Any],
) -> dict[str, Any]:
    """Write weights, vocabulary and card; returns the card as written (with file hashes)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    with zipfile.ZipFile(weights, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name], dtype=np.float32),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    vocab = directory / VOCAB_FILE
    vocab.write_text(json.dumps({"terms": terms}, ensure_ascii=False, separators=(",", ":")) + "\n",
                     encoding="utf-8")
    card = dict(card)
    card["files"] = {WEIGHTS_FILE: _sha256(weights), VOCAB_FILE: _sha256(vocab)}
    write_card(directory, card)
    return card


def write_card(directory: Path, card: dict[str, Any]) -> None:
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_card_field(directory: Path, key: str) -> Any:
    """One field of an existing card, or None (no card yet, or unreadable)."""
    try:
        return json.loads((directory / CARD_FILE).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def read(directory: Path, *, versions: dict[str, str] | None = None) -> Artifact:
    """Read and check an artifact; `versions` stands in for the installed library versions (tests)."""
    card_path = directory / CARD_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClassifierArtifactError(
            f"cannot read the classifier card {card_path}: {exc}; rebuild it with `model-router train`"
        ) from exc
    try:
        return _read_checked(directory, card, card_path, installed_versions() if versions is None else versions)
    except (KeyError, TypeError, AttributeError) as exc:  # a card or vocabulary without the expected fields
        raise ClassifierArtifactError(
            f"classifier artifact {directory} is incomplete ({type(exc).__name__}: {exc}); "
            "rebuild it with `model-router train`"
        ) from exc


def _read_checked(directory: Path, card: dict[str, Any], card_path: Path, versions: dict[str, str]) -> Artifact:
    _check(card, card_path, versions)
    for name, digest in card["files"].items():
        path = directory / name
        if not path.is_file() or _sha256(path) != digest:
            raise ClassifierArtifactError(
                f"classifier file {path} is missing or does not match the sha256 in {card_path}; "
                "rebuild the artifact with `model-router train`"
            )
    with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
        arrays = {name: np.asarray(npz[name], dtype=np.float32) for name in _ARRAYS}
    terms = tuple(json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))["terms"])
    labels = tuple(card["labels"])
    shapes_ok = (
        arrays["coef"].shape == (len(terms), len(labels))
        and arrays["idf"].shape == (len(terms),)
        and arrays["dense_coef"].shape == (len(DENSE_NAMES), len(labels))
        and arrays["intercept"].shape == (len(labels),)
    )
    if not shapes_ok:
        raise ClassifierArtifactError(f"classifier arrays in {directory} do not match its card; "
                                      "rebuild with `model-router train`")
    return Artifact(
        labels=labels,
        terms=terms,
        idf=arrays["idf"],
        coef=arrays["coef"],
        dense_coef=arrays["dense_coef"],
        intercept=arrays["intercept"],
        temperature=float(card["calibration"]["temperature"]),
        card={**card, "thresholds": {**card["thresholds"],
                                     "long_context_tokens": int(card["thresholds"]["long_context_tokens"])}},
    )


def _check(card: dict[str, Any], card_path: Path, versions: dict[str, str]) -> None:
    if card.get("format") != FORMAT:
        raise ClassifierArtifactError(
            f"{card_path} has format {card.get('format')!r}, this code reads {FORMAT!r}; "
            "rebuild it with `model-router train`"
        )
    if card.get("features_version") != FEATURES_VERSION:
        raise ClassifierArtifactError(
            f"{card_path} was trained with features_version {card.get('features_version')}, this code "
            f"extracts features_version {FEATURES_VERSION}; rebuild it with `model-router train`"
        )
    trained = card.get("library_versions", {})
    mismatched = [
        f"{name} {trained.get(name)} (card) vs {versions.get(name)} (installed)"
        for name in PINNED_LIBRARIES
        if trained.get(name) != versions.get(name)
    ]
    if mismatched:
        raise ClassifierArtifactError(
            f"classifier artifact {card_path.parent} was built with other library versions: "
            + "; ".join(mismatched)
            + ". Install the locked versions (requirements.lock) or rebuild the artifact with "
            "`model-router train`"
        )
