"""Reading-comprehension rows cut from the training data's own long documents.

Real traffic asks questions about a short passage it pastes (a paragraph of an article, a page of a
manual, a stretch of a meeting) with no request words at all: "<paragraph>\n\nWho founded X?". That is
a `simple` request, but the only public source of it (XQuAD) is one source, so held out it is judged by
a model for which 400-1,200 characters of prose with a question is where math word problems live.

Every `long_context` row is a document plus a question about it. A passage of 300-1,200 characters cut
from that document at a hashed paragraph, with the row's own question kept where it was, is the same
task on a short text, which the taxonomy calls `simple`. The copy keeps its source, so it is held out
with the document it came from; at most one passage per document, and nothing here is written by hand.
"""

from __future__ import annotations

import hashlib
from typing import Final

MIN_PASSAGE: Final = 300
MAX_PASSAGE: Final = 1200
MAX_QUESTION: Final = 500  # longer "questions" are instructions or material, not a reading question


def _worded(part: str) -> bool:
    """Words, not a code block, a table or markup (a document may end in one)."""
    stripped = part.strip()
    if not stripped or stripped.startswith(("```", "<", "|", "{", "[")):
        return False
    return sum(ch.isalpha() for ch in stripped) >= 0.5 * len(stripped)


def split_question(text: str) -> tuple[str, str, bool] | None:
    """(document, question, question_last) when the text is a short question before or after a document
    separated by a blank line; None otherwise."""
    first, last = text.find("\n\n"), text.rfind("\n\n")
    if 0 < len(text) - last - 2 <= MAX_QUESTION and _worded(text[last + 2:]):
        return text[:last], text[last + 2:], True
    if 0 < first <= MAX_QUESTION and _worded(text[:first]):
        return text[first + 2:], text[:first], False
    return None


def _prose(paragraph: str) -> bool:
    """A paragraph of running text: not a heading, a table, markup or a code block."""
    stripped = paragraph.strip()
    if len(stripped) < 80 or stripped.startswith(("#", "|", "<", "```", "    ", "..", "- ", "* ", "=")):
        return False
    letters = sum(ch.isalpha() for ch in stripped)
    return letters >= 0.6 * len(stripped) and stripped.count("`") < 6


def passage(document: str, seed: int) -> str | None:
    """Consecutive prose paragraphs from a hashed starting point, 300-1,200 characters (the target length
    is hashed too), cut at a sentence end when one paragraph is longer than the target."""
    paragraphs = [p.strip() for p in document.split("\n\n")]
    prose = [i for i, p in enumerate(paragraphs) if _prose(p)]
    if not prose:
        return None
    target = MIN_PASSAGE + seed % (MAX_PASSAGE - MIN_PASSAGE)
    start = prose[(seed // 7) % len(prose)]
    taken: list[str] = []
    size = 0
    for p in paragraphs[start:]:
        if not _prose(p) or size >= target:
            break
        taken.append(p)
        size += len(p) + 2
    text = "\n\n".join(taken)
    if len(text) > MAX_PASSAGE:
        ends = [text.rfind(mark, MIN_PASSAGE, MAX_PASSAGE) for mark in (". ", "。", "！", "？", "! ", "? ")]
        end = max(ends)
        text = text[: end + 1] if end > 0 else text[:MAX_PASSAGE]
    return text.strip() if len(text.strip()) >= MIN_PASSAGE else None


def reading_question(text: str) -> str | None:
    """A short-passage copy of a long document row, its question kept on the same side; None when the
    row has no separable question or no prose passage."""
    parts = split_question(text)
    if parts is None:
        return None
    document, question, question_last = parts
    chunk = passage(document, int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
    if chunk is None:
        return None
    return f"{chunk}\n\n{question}" if question_last else f"{question}\n\n{chunk}"
