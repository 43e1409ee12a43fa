"""TaskClassifier against the committed artifact: labels, structural rules, floor, robustness, CLI, card."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from router.classifier import Classification, ClassifierArtifactError, TaskClassifier
from router.classifier import artifact as artifact_io
from router.classifier.commands import classify_command, classify_stream
from router.classifier.estimates import answer_length, subtasks

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "classifiers" / "model"


@pytest.fixture(scope="module")
def classifier() -> TaskClassifier:
    return TaskClassifier.load()


def user(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


# Written for these tests, unlike the training sources (none of them is in any corpus).
EXAMPLES = {
    "simple": [
        "what's the population of iceland",
        "Can you translate 'good luck with the exam' into German?",
        "How do I turn off notifications on my iPhone?",
        "Hey there! Hope you're having a nice evening.",
    ],
    "reasoning": [
        "A tank fills in 6 hours with pipe A and 9 hours with pipe B. Pipe C empties it in 12 hours. "
        "With all three open, how long until it is full?",
        "Every guest at the party shook hands with every other guest exactly once, 66 handshakes in all. "
        "How many guests were there? Explain your reasoning.",
        "Exactly one of these statements is true: the key is in the red box; the key is not in the blue box; "
        "the key is not in the red box. Where is the key?",
        "甲乙两人从相距60公里的两地同时出发相向而行，甲每小时走4公里，乙每小时走6公里，几小时后相遇？",
    ],
    "coding": [
        "my flask route returns 405 Method Not Allowed when I POST from the form, the decorator is "
        "@app.route('/submit'). what's wrong?",
        "Traceback (most recent call last):\n  File \"train.py\", line 88, in <module>\n"
        "    loss.backward()\nRuntimeError: element 0 of tensors does not require grad\nhow do I fix this?",
        "Write a TypeScript function that deep-merges two objects without mutating either.",
        "把这个 Python 循环改成列表推导式：result = []\nfor x in data:\n    if x > 0:\n        result.append(x * 2)",
    ],
    "agentic": [
        "Please book a meeting room for Thursday 2pm, invite the marketing team and attach the Q3 deck.",
        "Go into the admin dashboard, disable the accounts of the three contractors who left, and email IT.",
        "Find my last electricity bill in my inbox, pay it from the joint account and file the receipt.",
        "帮我在系统里创建一个新客户档案，然后给销售经理发一封邮件通知他。",
    ],
    "decomposable": [
        "For each of these 14 competitors, check their pricing page, free trial length and main integrations.",
        "Compare the 9 biggest cloud storage providers on price per TB, encryption, sharing features and "
        "desktop clients.",
        "Summarize each of these quarterly reports separately, then write one overview across all of them.",
        "请分别调研以下12家咖啡连锁品牌的门店数量、客单价、融资情况和扩张策略，并做对比。",
    ],
    "creative": [
        "Write a short poem about a lighthouse that falls in love with a passing ship.",
        "Give me five witty taglines for a bakery that only opens at midnight.",
        "Write a bedtime story about a snail who wants to win a race, for a four-year-old.",
        "请写一首关于故乡的小诗，要有淡淡的乡愁。",
    ],
}


@pytest.mark.parametrize(
    ("label", "text"), [(label, text) for label, texts in EXAMPLES.items() for text in texts]
)
def test_each_label_has_examples_that_classify_correctly(
    classifier: TaskClassifier, label: str, text: str
) -> None:
    result = classifier.classify(user(text))
    assert result.task_type == label, (result.task_type, result.probabilities)
    assert result.rule is None
    assert result.confidence == pytest.approx(result.probabilities[label])


def test_long_supplied_document_is_long_context_by_rule(classifier: TaskClassifier) -> None:
    document = "Speaker A: we reviewed the budget and the timeline for the new plant.\n" * 2000
    result = classifier.classify(user(document + "\n\nWhat did the committee decide about the budget?"))
    assert result.task_type == "long_context"
    assert result.rule is not None and result.rule.startswith("long_context:")
    assert result.confidence == 1.0
    assert result.input_tokens >= classifier.card["thresholds"]["long_context_tokens"]


def test_image_and_video_parts_are_vision_by_rule(classifier: TaskClassifier) -> None:
    image = [{"role": "user", "content": [
        {"type": "text", "text": "What is written on this sign?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]
    result = classifier.classify(image)
    assert (result.task_type, result.rule, result.confidence) == ("vision", "vision: image part", 1.0)
    assert set(result.probabilities) == set(classifier.labels)  # text probabilities still reported
    video = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]}]
    assert classifier.classify(video).rule == "vision: video part"
    # A text-only backend cannot read the image, so vision wins over tools.
    assert classifier.classify(image, tools=[{"type": "function"}]).task_type == "vision"


def test_tools_make_a_request_agentic(classifier: TaskClassifier) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    result = classifier.classify(user("who is park ji sung"), tools=tools)
    assert (result.task_type, result.rule, result.confidence) == ("agentic", "agentic: tools attached", 1.0)
    assert classifier.classify(user("who is park ji sung"), tools=[]).rule is None  # empty list: no tools
    turns = [
        {"role": "user", "content": "What's the weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 3}"},
    ]
    assert classifier.classify(turns).task_type == "agentic"


def test_confidence_floor_falls_back_and_keeps_probabilities(classifier: TaskClassifier) -> None:
    messages = user("Write a short poem about the sea.")
    plain = classifier.classify(messages)
    floored = classifier.classify(messages, confidence_floor=1.01, fallback="reasoning")
    assert plain.task_type == "creative" and plain.rule is None
    assert floored.task_type == "reasoning"
    assert floored.probabilities == plain.probabilities
    assert floored.confidence == pytest.approx(plain.probabilities["reasoning"])
    assert floored.rule is not None and floored.rule.startswith("floor: creative")
    assert classifier.classify(messages, confidence_floor=0.0).task_type == "creative"
    with pytest.raises(ValueError, match="not a task type"):
        classifier.classify(messages, fallback="chitchat")


def test_rules_are_not_subject_to_the_floor(classifier: TaskClassifier) -> None:
    result = classifier.classify(user("hi"), tools=[{"type": "function"}], confidence_floor=0.99)
    assert result.task_type == "agentic"


def test_probabilities_are_a_distribution_over_the_text_labels(classifier: TaskClassifier) -> None:
    result = classifier.classify(user("How do I sort a list in Python?"))
    assert set(result.probabilities) == {"simple", "reasoning", "coding", "agentic", "decomposable",
                                         "creative", "long_context"}
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert isinstance(result, Classification)


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": []}],
        [{"role": "user", "content": [{"type": "text"}, {"type": "text", "text": 5}, "loose string", 7, None]}],
        [{"role": "system", "content": "You are terse."}],
        [{"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
         {"role": "assistant", "content": "Bonjour"}],
        [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}],
        [{"content": "no role at all"}, "not a dict", None],
        [{"role": "user", "content": {"unexpected": "object"}}],
        [{"role": "user", "content": "\x00\ud800 odd \u202e text" * 50}],
    ],
)
def test_never_raises_on_odd_but_valid_input(classifier: TaskClassifier, messages: list[dict[str, object]]) -> None:
    result = classifier.classify(messages)
    assert result.task_type in (*classifier.labels, "vision")
    assert result.subtasks >= 1 and result.input_tokens >= 0
    assert result.answer_length in ("short", "medium", "long")


def test_system_prompt_is_weighed_below_the_last_user_turn(classifier: TaskClassifier) -> None:
    messages = [
        {"role": "system", "content": "You are a senior Python engineer who reviews code and fixes bugs."},
        {"role": "user", "content": "Write a haiku about autumn leaves."},
    ]
    assert classifier.classify(messages).task_type == "creative"


def test_subtask_and_answer_length_estimates() -> None:
    assert subtasks("For each of these 20 banks, find the CET1 ratio.") == 20
    assert subtasks("Compare AWS, Azure, GCP and Oracle on GPU prices") == 4
    assert subtasks("Summarise each file:\n- a.pdf\n- b.pdf\n- c.pdf") == 3
    assert subtasks("请对比以下10款国产新能源汽车") == 10
    assert subtasks("In 2024 I adopted 3 cats. What should I feed them?") == 1
    assert subtasks("x" * 200_000) == 1
    assert answer_length("What is the capital of France?", "simple", 1) == "short"
    assert answer_length("Write a 1500-word essay on tides", "creative", 1) == "long"
    assert answer_length("Explain in one sentence what DNS is", "reasoning", 1) == "short"
    assert answer_length("Fix this bug", "coding", 1) == "medium"
    assert answer_length("Compare these", "decomposable", 12) == "long"


def test_classify_stream_round_trip_keeps_fields_and_flags_bad_lines(classifier: TaskClassifier) -> None:
    lines = [
        json.dumps({"id": 1, "text": "Write a limerick about a sleepy cat."}),
        "",
        json.dumps({"id": 2, "messages": user("what year did the titanic sink")}),
        "{not json",
        json.dumps({"id": 3, "text": "hello", "tools": [{"type": "function"}]}),
        json.dumps({"id": 4}),
    ]
    out, err = io.StringIO(), io.StringIO()
    status = classify_stream(classifier, io.StringIO("\n".join(lines) + "\n"), out, err)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert status == 1
    assert [r.get("id") for r in records] == [1, 2, None, 3, None]
    assert records[0]["task_type"] == "creative" and records[1]["task_type"] == "simple"
    assert records[3]["task_type"] == "agentic" and records[3]["rule"] == "agentic: tools attached"
    assert set(records[0]) >= {"task_type", "confidence", "probabilities", "answer_length", "subtasks"}
    assert records[2] == {"error": records[2]["error"], "line": 4}
    assert records[4]["line"] == 6 and "'text'" in records[4]["error"]
    assert "line 4:" in err.getvalue() and "line 6:" in err.getvalue()


def test_classify_command_files_and_module_entry_point(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "Translate 'see you tomorrow' into Italian.", "gold": "simple"}) + "\n",
                      encoding="utf-8")
    target = tmp_path / "out.jsonl"
    assert classify_command(str(source), str(target)) == 0
    [record] = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert record["gold"] == "simple" and record["task_type"] == "simple"

    done = subprocess.run(
        [sys.executable, "-m", "router.classifier.commands", "classify"],
        input=json.dumps({"text": "Write a haiku about rain."}) + "\n",
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["task_type"] == "creative"


def copy_artifact(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(MODEL_DIR, target)
    return target


def edit_card(directory: Path, **changes: object) -> None:
    path = directory / artifact_io.CARD_FILE
    card = json.loads(path.read_text(encoding="utf-8"))
    card.update(changes)
    path.write_text(json.dumps(card), encoding="utf-8")


def test_library_version_mismatch_fails_loudly(tmp_path: Path) -> None:
    directory = copy_artifact(tmp_path)
    assert TaskClassifier.load(directory).labels  # the copy itself loads
    versions = artifact_io.installed_versions()
    edit_card(directory, library_versions={**versions, "scikit-learn": "0.24.2"})
    with pytest.raises(ClassifierArtifactError) as caught:
        TaskClassifier.load(directory)
    message = str(caught.value)
    assert "scikit-learn 0.24.2 (card)" in message
    assert f"{versions['scikit-learn']} (installed)" in message
    assert "model-router train" in message


def test_installed_versions_are_checked_not_just_the_card(tmp_path: Path) -> None:
    versions = {**artifact_io.installed_versions(), "numpy": "1.0.0"}
    with pytest.raises(ClassifierArtifactError, match=r"numpy .* vs 1\.0\.0 \(installed\)"):
        artifact_io.read(MODEL_DIR, versions=versions)


def test_feature_version_mismatch_and_tampered_files_fail(tmp_path: Path) -> None:
    directory = copy_artifact(tmp_path)
    edit_card(directory, features_version=-1)
    with pytest.raises(ClassifierArtifactError, match="features_version"):
        TaskClassifier.load(directory)
    directory = copy_artifact(tmp_path / "second")
    with (directory / artifact_io.WEIGHTS_FILE).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ClassifierArtifactError, match="sha256"):
        TaskClassifier.load(directory)
    with pytest.raises(ClassifierArtifactError, match="cannot read"):
        TaskClassifier.load(tmp_path / "missing")


def test_card_reports_leave_one_source_out_quality_and_artifact_is_small(classifier: TaskClassifier) -> None:
    card = classifier.card
    loso = card["evaluation"]["leave_one_source_out"]
    assert set(loso["per_label"]) == set(card["labels"])
    matrix = loso["confusion_matrix"]["rows_true_cols_predicted"]
    assert len(matrix) == len(card["labels"]) == 7
    assert sum(map(sum, matrix)) == card["data"]["rows"] == sum(s["rows"] for s in loso["per_source"])
    # Every source was held out once, and the public repositories are among them.
    sources = {s["source"] for s in loso["per_source"]}
    assert {"deepmind/xquad", "Yale-LILY/FOLIO", "TheAlgorithms/*", "model-router/decomposable"} <= sources
    assert card["evaluation"]["random_split"]["macro_f1"] >= loso["macro_f1"]  # leaks flatter
    calibration = card["calibration"]
    assert 0 < calibration["temperature"] and calibration["ece_after"] <= calibration["ece_before"] + 0.01
    floors = card["thresholds"]["floors_on_held_out"]
    assert [f["floor"] for f in floors] == sorted(f["floor"] for f in floors)
    assert {"short", "medium", "long"} <= set(card["latency_us"])
    size = sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file())
    assert size <= 50 * 1024 * 1024


def test_policy_confidence_floor_comes_from_the_cards_table(classifier: TaskClassifier) -> None:
    import yaml

    policy = yaml.safe_load((REPO / "policies" / "default.yaml").read_text(encoding="utf-8"))
    floor = policy["classifier"]["confidence_floor"]
    rows = {f["floor"]: f for f in classifier.card["thresholds"]["floors_on_held_out"]}
    assert floor == classifier.card["thresholds"]["suggested_confidence_floor"] and floor in rows


def test_readme_numbers_are_regenerated_from_the_card(classifier: TaskClassifier) -> None:
    from router.classifier import report

    readme = REPO / "classifiers" / "README.md"
    assert report.generated_block(readme) == report.render(classifier.card), (
        "classifiers/README.md is out of date: run `model-router train` or "
        "`benchmarks/bench_classifier.py --update-card`, which rewrite its generated block"
    )


def test_work_per_request_is_bounded_by_the_windows() -> None:
    from router.classifier.features import view_of, weighted_terms

    huge = "lorem ipsum dolor sit amet " * 40_000  # ~1 MB in each of system, history and user turn
    view = view_of([
        {"role": "system", "content": huge},
        {"role": "user", "content": huge},
        {"role": "assistant", "content": huge},
        {"role": "user", "content": huge + "What is this about?"},
    ])
    assert view.input_tokens > 1_000_000 // 4
    small = view_of([{"role": "system", "content": huge[:600]}, {"role": "user", "content": huge[:1600]},
                     {"role": "assistant", "content": huge[:600]}, {"role": "user", "content": huge[:1600]}])
    # Only the windows are read word by word: the term mass is that of the small request, give or take
    # the joins between head and tail.
    assert sum(weighted_terms(view).values()) <= sum(weighted_terms(small).values()) * 1.1


def test_incomplete_card_is_an_artifact_error(tmp_path: Path) -> None:
    directory = copy_artifact(tmp_path)
    card = json.loads((directory / artifact_io.CARD_FILE).read_text(encoding="utf-8"))
    del card["thresholds"]
    (directory / artifact_io.CARD_FILE).write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ClassifierArtifactError, match="incomplete"):
        TaskClassifier.load(directory)


def test_label_source_says_which_path_chose_the_label(classifier: TaskClassifier) -> None:
    assert classifier.classify(user("Write a haiku about rain.")).label_source == "model"
    assert classifier.classify(user("hi"), tools=[{"type": "function"}]).label_source == "rule"
    floored = classifier.classify(user("Write a haiku about rain."), confidence_floor=1.01)
    assert floored.rule is not None and floored.label_source == "rule"
