"""The card's numbers as Markdown, kept in classifiers/README.md between two markers.

`model-router train` and `benchmarks/bench_classifier.py --update-card` rewrite the block; a test
re-renders it from the committed card and fails on any difference, so the README cannot drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

BEGIN: Final = "<!-- card:begin (generated from classifiers/model/card.json; do not edit) -->"
END: Final = "<!-- card:end -->"


def _per_label(result: dict[str, Any]) -> list[str]:
    lines = ["| label | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, row in result["per_label"].items():
        lines.append(f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    return lines


def _confusion(result: dict[str, Any]) -> list[str]:
    labels = result["confusion_matrix"]["labels"]
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for label, row in zip(labels, result["confusion_matrix"]["rows_true_cols_predicted"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(n) for n in row) + " |")
    return lines


def _per_source(result: dict[str, Any]) -> list[str]:
    lines = ["| held-out source | labels (rows) | rows | accuracy | macro-F1 of its labels |",
             "|---|---|---:|---:|---:|"]
    for row in sorted(result["per_source"], key=lambda r: r["source"].lower()):
        labels = ", ".join(f"{label} {n}" for label, n in row["labels"].items())
        lines.append(f"| {row['source']} | {labels} | {row['rows']} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} |")
    return lines


def render(card: dict[str, Any]) -> str:
    evaluation = card.get("evaluation", {})
    out = [BEGIN, ""]
    if "leave_one_source_out" in evaluation:
        loso = evaluation["leave_one_source_out"]
        random_split = evaluation["random_split"]
        weak = [r for r in loso["per_source"] if r["accuracy"] < 0.6]
        out += [
            "| evaluation | macro-F1 (7 text labels) | accuracy |",
            "|---|---:|---:|",
            f"| **leave-one-source-out** (the number that predicts unseen traffic) | **{loso['macro_f1']:.3f}** "
            f"| **{loso['accuracy']:.3f}** |",
            f"| in-distribution: random 80/20 split (for contrast; sources leak) | {random_split['macro_f1']:.3f} "
            f"| {random_split['accuracy']:.3f} |",
            "",
            f"Method: {loso['method']}. Per held-out source (accuracy is the share of its rows labelled right "
            "while it was unseen; for a one-label source the macro-F1 column is that label's F1 on its own rows):",
            "",
            *_per_source(loso),
            "",
            f"Sources below 0.6 accuracy: {', '.join(r['source'] for r in weak) if weak else 'none'}.",
            "",
            "Per label, leave-one-source-out:",
            "",
            *_per_label(loso),
            "",
            "Confusion matrix (leave-one-source-out; rows are true labels):",
            "",
            *_confusion(loso),
            "",
        ]
        tool_rows = evaluation.get("tool_call_rows_as_text")
        if tool_rows:
            out += [
                f"Tool-call rows kept out of the text model ({', '.join(tool_rows['sources'])}, "
                f"{tool_rows['rows']} rows): read as text alone, "
                f"{tool_rows['share_predicted_agentic_without_tools']:.0%} would be called agentic; in production "
                "they carry tools and the rule labels them.",
                "",
            ]
    calibration = card.get("calibration", {})
    if "ece_after" in calibration:
        out += [
            f"Calibration: {calibration['method']}; temperature {calibration['temperature']}, expected calibration "
            f"error {calibration['ece_before']} before, {calibration['ece_after']} after.",
            "",
        ]
    thresholds = card["thresholds"]
    out += [
        f"Thresholds: long_context rule at {thresholds['long_context_tokens']} estimated input tokens; "
        f"suggested confidence floor {thresholds['suggested_confidence_floor']} (lowest floor at which the "
        f"answers accepted on held-out sources are {thresholds['suggested_floor_target_accuracy']:.0%} right; "
        "below the floor the policy's fallback label is used).",
        "",
    ]
    floors = thresholds.get("floors_on_held_out", [])
    if floors:
        out += ["Accuracy and coverage per confidence floor (calibrated, leave-one-source-out; the long_context "
                "rule counts as confidence 1):", "",
                "| floor | coverage | accuracy of accepted |", "|---:|---:|---:|"]
        out += [f"| {f['floor']:.2f} | {f['coverage']:.3f} | {f['accuracy']:.3f} |" for f in floors]
        out.append("")
    check = evaluation.get("floor_check")
    if check:
        out += [f"Check of the floor's claim ({check['method']}): at floor {check['floor']} the accepted answers "
                f"are {check['accuracy']:.1%} right at {check['coverage']:.1%} coverage (halves: "
                + "; ".join(f"{h['accuracy']:.1%} at {h['coverage']:.1%}, temperature {h['temperature']}"
                            for h in check["halves"]) + ").", ""]
    latency = card.get("latency_us")
    if latency:
        out += [
            f"Latency per classify() call, microseconds ({latency['method']}; {latency['machine']}; "
            f"artifact load {latency['load_ms']} ms):",
            "",
            "| size | chars | p50 | p99 | cpu p50 | cpu p99 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for size in ("short", "medium", "long"):
            row = latency[size]
            out.append(f"| {size} | {row['chars']:.0f} | {row['p50']} | {row['p99']} | {row['cpu_p50']} "
                       f"| {row['cpu_p99']} |")
        out.append("")
    model = card["model"]
    out += [
        f"Model: {model['kind']}, {model['terms']} terms + {len(model['dense_features'])} structural features, "
        f"trained on {card['data']['rows']} rows; numpy {card['library_versions']['numpy']}, scikit-learn "
        f"{card['library_versions']['scikit-learn']}, scipy {card['library_versions']['scipy']}.",
        "",
        END,
    ]
    return "\n".join(out)


def default_readme() -> Path:
    from router.classifier.artifact import default_dir

    return default_dir().parent / "README.md"


def update_readme(readme: Path, card: dict[str, Any]) -> bool:
    """Replace the generated block; returns False (and changes nothing) when the markers are missing."""
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[:start] + render(card) + text[end + len(END):], encoding="utf-8")
    return True


def generated_block(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    return text[start:end + len(END)] if 0 <= start < end else ""
