"""Two cheap estimates the policy and the swarm planner need: answer length and independent subtasks.

Both are heuristics over the last user turn (regexes on a bounded window), not learned: they are
easy to read, easy to replace once we log real answer lengths and swarm plans.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Final

from router.classifier.features import line_matches

MAX_SUBTASKS: Final = 100  # the swarm never plans more agents than this
MAX_NUMBERS: Final = 30

HEAD: Final = 1000  # characters read; requests say what they want near the start

# A number is a count of parts when one of these precedes it: "for each of these 20", "the top-10",
# "compare 25", or a Chinese measure word follows it: "12 家公司".
_COUNT_CUES: Final = ("each of", "these", "those", "following", "top", "compare", "all", "list", "research",
                      "summarize", "summarise", "profile")
_MEASURE_WORDS: Final = "个家款种篇份位座所部项国"
_NUMBER: Final = re.compile(r"(?<!\d)\d{1,3}(?!\d)")
_ITEM: Final = re.compile(
    r"^\s*(?:[-*•·]|\d{1,3}[.)、]|[a-zA-Z][.)]|[（(]?[一二三四五六七八九十]+[)）、.])\s+\S", re.MULTILINE
)
_SENTENCE: Final = re.compile(r"[.?!。？！:：;；\n]")
_SEPARATOR: Final = re.compile(r"[,，、]| and | or ")

_WORD_COUNT: Final = re.compile(r"(\d{2,5})[\s-]*(?:words?|字|characters?|tokens?)")
# Substring cues (C-speed `in` tests); a leading space stands in for a word boundary.
_SHORT_CUES: Final = (" one word", " one sentence", " a sentence", " one line", " single sentence", "briefly",
                      " in short", "yes or no", "tl;dr", "one-liner", "slogan", "tagline", "haiku", "一句话",
                      "简短", "一个词")
_LONG_CUES: Final = (" report", " essay", " chapter", " story", "screenplay", " script", " article",
                     "white paper", "whitepaper", " thesis", "in detail", "detailed", "comprehensive",
                     "in-depth", "step-by-step guide", " pages", "报告", "论文", "详细", "章节", "小说")
_BY_TASK: Final = {
    "simple": "short",
    "reasoning": "medium",
    "coding": "medium",
    "agentic": "medium",
    "decomposable": "long",
    "creative": "medium",
    "long_context": "medium",
    "vision": "medium",
}


def subtasks(text: str) -> int:
    """Independent parts of a request: the largest of an explicit count, list items, an inline
    enumeration ("AWS, Azure, GCP and Oracle") and distinct questions; 1 when nothing says otherwise."""
    head = text[:HEAD].lower()
    best = 1
    numbers = _NUMBER.finditer(head) if any(d in head for d in "0123456789") else iter(())
    for match in islice(numbers, MAX_NUMBERS):  # a table of figures is not a list of parts
        n = int(match.group())
        before = head[max(match.start() - 16, 0) : match.start()]
        after = head[match.end() : match.end() + 2].strip()
        cue = any(c in before for c in _COUNT_CUES) or (after != "" and after[0] in _MEASURE_WORDS)
        if cue and 2 <= n <= MAX_SUBTASKS:
            best = max(best, n)
    items = line_matches(_ITEM, head)
    if items >= 2:
        best = max(best, items)
    # Parts of a sentence = 1 + its separators. Separators never overlap one another unless " and " and
    # " or " share a space (" and or ", " or and "), so without those the regex's count is the sum of
    # C-speed str.count calls (about 8x fewer instructions than a regex split per sentence).
    exact_counts = " and or " not in head and " or and " not in head
    for sentence in _SENTENCE.split(head) if _separators(head) >= 2 else ():
        parts = _separators(sentence) + 1 if exact_counts else len(_SEPARATOR.split(sentence))
        # Three or more short parts read as a list of entities, not as clauses of prose.
        if parts >= 3 and len(sentence) <= 30 * parts:
            best = max(best, parts)
    questions = head.count("?") + head.count("？")
    if questions >= 2:
        best = max(best, questions)
    return min(best, MAX_SUBTASKS)


def _separators(text: str) -> int:
    """How often the separators of `_SEPARATOR` occur (its match count when " and " and " or " do not
    overlap; never below it)."""
    return text.count(",") + text.count("，") + text.count("、") + text.count(" and ") + text.count(" or ")


def answer_length(text: str, task_type: str, n_subtasks: int) -> str:
    """Expected answer length: an explicit word count wins, then wording hints, then the task type."""
    head = text[:HEAD].lower()
    # "\d{2,5} words" needs a digit: ASCII text without an ASCII digit has none (C-speed `in` tests).
    maybe_count = not head.isascii() or any(d in head for d in "0123456789")
    counts = [int(m.group(1)) for m in _WORD_COUNT.finditer(head)] if maybe_count else []
    if counts:
        words = max(counts)
        return "short" if words <= 150 else "medium" if words <= 600 else "long"
    padded = " " + head
    if any(cue in padded for cue in _SHORT_CUES):
        return "short"
    if task_type == "decomposable" or n_subtasks >= 5:
        return "long"
    if task_type in ("creative", "reasoning", "coding") and any(cue in padded for cue in _LONG_CUES):
        return "long"
    return _BY_TASK.get(task_type, "medium")
