"""`model-router classify` and `model-router train`, as plain functions the CLI calls.

classify: JSONL in, JSONL out. Each input line is `{"text": "..."}` or `{"messages": [...]}` (optionally
`"tools": [...]`); every other field is copied through. Each output line adds `task_type`, `confidence`,
`probabilities`, and also `answer_length`, `subtasks`, `input_tokens` and `rule`.
A line that cannot be classified (bad JSON, neither text nor messages) still gets an output line,
`{"error": "...", "line": N}`, so output lines stay aligned with input lines; the problem is also
printed to stderr with its line number, and the exit status is 1. Blank lines are skipped.

    .venv/bin/python -m router.classifier.commands classify [--input F] [--output F]
    .venv/bin/python -m router.classifier.commands train [--data F] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from router.classifier import report
from router.classifier.artifact import ClassifierArtifactError
from router.classifier.model import TaskClassifier


def _request(record: Any) -> tuple[list[dict[str, Any]], list[Any] | None]:
    if not isinstance(record, dict):
        raise ValueError("each line must be a JSON object")
    tools = record.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ValueError("'tools' must be a list")
    if isinstance(record.get("messages"), list):
        return record["messages"], tools
    if isinstance(record.get("text"), str):
        return [{"role": "user", "content": record["text"]}], tools
    raise ValueError("each line needs a string 'text' or a list 'messages'")


def classify_stream(classifier: TaskClassifier, source: TextIO, sink: TextIO, errors: TextIO) -> int:
    status = 0
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages, tools = _request(record)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            print(f"line {number}: {exc}", file=errors)
            sink.write(json.dumps({"error": str(exc), "line": number}) + "\n")
            status = 1
            continue
        result = asdict(classifier.classify(messages, tools=tools))
        sink.write(json.dumps({**record, **result}, ensure_ascii=False) + "\n")
    return status


def classify_command(input_path: str | None, output_path: str | None) -> int:
    try:
        classifier = TaskClassifier.load()
    except ClassifierArtifactError as exc:
        print(f"model-router classify: {exc}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        try:
            source = stack.enter_context(open(input_path, encoding="utf-8")) if input_path else sys.stdin
            sink = stack.enter_context(open(output_path, "w", encoding="utf-8")) if output_path else sys.stdout
        except OSError as exc:
            print(f"model-router classify: {exc}", file=sys.stderr)
            return 2
        return classify_stream(classifier, source, sink, sys.stderr)


def train_command(data_path: str | None, output_dir: str | None) -> int:
    from router.classifier.train import default_data_path, train  # scikit-learn only when training

    data = Path(data_path) if data_path else default_data_path()
    if not data.is_file():
        print(
            f"model-router train: training data {data} not found; pass --data FILE or set ROUTER_TRAIN_DATA "
            "(the default is <repo>/../shared/datasets/routing-train.jsonl)",
            file=sys.stderr,
        )
        return 2
    card = train(data, Path(output_dir) if output_dir else None, log=lambda m: print(m, file=sys.stderr))
    if not output_dir:  # the packaged artifact: keep the README's generated numbers in step
        report.update_readme(report.default_readme(), card)
    loso, in_distribution = card["evaluation"]["leave_one_source_out"], card["evaluation"]["random_split"]
    print(f"leave-one-source-out macro-F1 {loso['macro_f1']} (accuracy {loso['accuracy']}, "
          f"{len(loso['per_source'])} sources held out one at a time); in-distribution random split "
          f"{in_distribution['macro_f1']} for contrast; artifact and card in {output_dir or 'classifiers/model'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router.classifier.commands")
    sub = parser.add_subparsers(dest="command", required=True)
    classify = sub.add_parser("classify", help="label JSONL requests with their task type")
    classify.add_argument("--input", default=None)
    classify.add_argument("--output", default=None)
    train = sub.add_parser("train", help="rebuild the classifier artifact and card")
    train.add_argument("--data", default=None)
    train.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.command == "classify":
        return classify_command(args.input, args.output)
    return train_command(args.data, args.output)


if __name__ == "__main__":
    sys.exit(main())
