"""Reading-comprehension rows cut from long documents (router/classifier/passages.py, used by training):
a 300-1,200-character prose passage of the document, the row's own question kept on its side."""

from __future__ import annotations

from router.classifier.passages import MAX_PASSAGE, MIN_PASSAGE, passage, reading_question, split_question
from router.classifier.train import Row, reading_passages

PARAGRAPHS = [
    f"Paragraph {i} tells how the ferry between the two islands changed hands in year {1900 + i}, who ran it, "
    "what it carried, and why the harbour master complained about the timetable every single winter."
    for i in range(40)
]
DOCUMENT = "\n\n".join(["# A heading that is not prose", *PARAGRAPHS, "```\ncode = 1\n```"])


def test_the_question_stays_on_its_side_and_the_passage_is_short_prose() -> None:
    after = reading_question(DOCUMENT + "\n\nWho ran the ferry?")
    before = reading_question("Who ran the ferry?\n\n" + DOCUMENT)
    assert after is not None and before is not None
    text, question = after.rsplit("\n\n", 1)
    assert question == "Who ran the ferry?"
    assert before.startswith("Who ran the ferry?\n\n")
    assert MIN_PASSAGE <= len(text) <= MAX_PASSAGE
    assert text in DOCUMENT and "#" not in text and "```" not in text


def test_no_question_or_no_prose_gives_nothing() -> None:
    assert split_question("x" * 3000) is None
    assert reading_question("x" * 3000) is None
    assert passage("```\n" + "a = b(c)\n" * 200 + "```", 7) is None


def test_the_passage_depends_on_the_seed_only() -> None:
    assert passage(DOCUMENT, 12345) == passage(DOCUMENT, 12345)
    assert len({passage(DOCUMENT, seed) for seed in range(20)}) > 1


def test_training_adds_passages_only_for_story_and_meeting_sources_in_their_own_source() -> None:
    story = Row(DOCUMENT + "\n\nWhat is the story about?", "long_context", "nyu-mll/SQuALITY:data/x.jsonl")
    docs = Row(DOCUMENT + "\n\nWhat does the PEP change?", "long_context", "python/peps:pep-0001.rst")
    short = Row("Who wrote Hamlet?", "simple", "nyu-mll/SQuALITY:data/x.jsonl")
    out = reading_passages([story, docs, short])
    assert [(r.label, r.source) for r in out] == [("simple", story.source)]
    assert out[0].text.endswith("\n\nWhat is the story about?") and len(out[0].text) < len(story.text)
