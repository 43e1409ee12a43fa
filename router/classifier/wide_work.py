"""Evidence that a request is *wide work*: many independent parts, or an explicit research-report ask.

`decomposable` sends a request to Agent Swarm (many sub-agents), so a false `decomposable` is the
costliest mistake the classifier makes. The taxonomy (classifiers/README.md) defines the label by
structure — research across N entities, "for each of …", lists of items, research reports — so the
model's `decomposable` is accepted only when the text shows some of that structure; otherwise the
next most probable label is answered. Measured on leave-one-source-out answers, most false
`decomposable` answers had none of it: a translation request in French, a single-topic "analysis of
the causes of X", a web-agent command with a date range.

Bounded and cheap: the first HEAD characters, lower-cased, C-speed `in` tests, one word split and a few
small regexes (~10 µs for a short request, ~100 µs for 1,000 characters without evidence); it only runs
when the model's answer is `decomposable`.
"""

from __future__ import annotations

import re
from typing import Final

HEAD: Final = 1000  # wide work says so near the start
MIN_PARTS: Final = 3  # "compare A and B" is one answer, not a fan-out

# Words that make a request iterate over items, in the languages of our data and of likely traffic.
_EACH: Final = (
    "for each", "each of", "for every", "every one of", "one by one", "one row per", "one section per",
    "per country", "per company", "per city", "item by item", "study by study", "bank by bank",
    "country by country", "company by company", "city by city", "case by case", "individually",
    "分别", "逐一", "逐个", "每一个", "每个", "各个", "各家", "各国", "それぞれ", "ごとに", "一つずつ",
    " each ", " every ", " all of the ", "compare all", "all the major", "all the big", "all the main",
    "different countries", "various countries", "各省", "各地",
    "para cada", "cada uno", "cada una", "de cada", "pour chaque", "pour chacun", "pour chacune", "chacun des",
    "chacune des", "für jede", "für jeden", "für jedes", "jeweils", "einzeln", "по каждому", "по каждой",
    "для каждого", "для каждой", "каждого из", "каждой из", "para cada um", "para cada uma",
)
# An explicit research deliverable: the swarm's other job (DeepResearch-style reports).
_REPORT: Final = (
    "research report", "report on", "report about", "a report", "full report", "detailed report",
    "literature review", "systematic review", "review of the literature", "survey of", "state of the art",
    "market analysis", "market research", "competitive analysis", "competitive landscape", "landscape of",
    "deep research", "deep dive", "in-depth", "comprehensive", "white paper", "whitepaper",
    "研究报告", "调研", "综述", "研报", "行业分析", "报告", "レポート", "調査", "報告書",
    "informe", "investigación", "rapport", "revue de littérature", "état de l'art", "bericht", "recherche",
    "umfassend", "отчёт", "отчет", "исследование", "обзор литературы", "relatório", "pesquisa",
    "revisão de literatura", " research", "analysis should", "detailed comparison", "研究", "分析", "深度",
)
_NUMBER_WORDS: Final = {
    "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100, "dozen": 12,
    "drei": 3, "vier": 4, "fünf": 5, "zehn": 10, "zwanzig": 20, "tres": 3, "cuatro": 4, "cinco": 5,
    "diez": 10, "veinte": 20, "trois": 3, "quatre": 4, "dix": 10, "vingt": 20, "três": 3, "dez": 10,
    "три": 3, "пять": 5, "десять": 10, "двадцать": 20,
    "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10, "二十": 20,
}
# A count of things to cover: "top 10", "these 25", "the 12 largest", "15 家", "十家公司" ("the 5 main
# reasons" is one topic's aspects, not a count of things to research).
_COUNT_BEFORE: Final = frozenset(("top", "these", "those", "following", "all", "compare", "cover"))
_COUNT_AFTER: Final = frozenset((
    "largest", "biggest", "leading", "most", "major", "best", "busiest", "richest", "größten", "grössten",
    "wichtigsten", "besten", "principales", "principaux", "plus", "mayores", "maiores", "principais", "крупнейших",
    "лучших",
))
# Words, split once at C speed (a regex alternation of every number word, tried at every position, cost
# ~400 µs per 1,000 characters); the count's neighbours are then set look-ups.
_WORD: Final = re.compile(r"\w+")
_CJK_COUNT: Final = re.compile(r"(\d{1,3}|[三四五六七八九十]|二十)\s*[家个款种篇份位座所部项国大社件本]")


def _count_of_items(head: str) -> int:
    """The first count of things to cover in `head` (MIN_PARTS..500), else 0."""
    words = _WORD.findall(head)
    for i, word in enumerate(words):
        n = (int(word) if len(word) <= 3 else 0) if word.isdecimal() else _NUMBER_WORDS.get(word, 0)
        if not MIN_PARTS <= n <= 500:
            continue
        before = words[i - 1] if i else ""
        if before in _COUNT_BEFORE or (before == "least" and i >= 2 and words[i - 2] == "at") \
                or (i + 1 < len(words) and words[i + 1] in _COUNT_AFTER):
            return n
    for match in _CJK_COUNT.finditer(head):
        word = match.group(1)
        n = int(word) if word.isdecimal() else _NUMBER_WORDS.get(word, 0)
        if MIN_PARTS <= n <= 500:
            return n
    return 0


_BULLET: Final = re.compile(r"^\s*(?:[-*•·]|\d{1,3}[.)、])\s+\S", re.MULTILINE)
_SENTENCE: Final = re.compile(r"[.?!。？！:：;；\n]")


def evidence(text: str) -> str | None:
    """Why `text` reads as wide work (a short reason for the decision log), or None when nothing does."""
    head = " " + text[:HEAD].lower()  # a leading space: cues that start with one match at the start too
    for cue in _EACH:
        if cue in head:
            return f"wide work: '{cue}'"
    for cue in _REPORT:
        if cue in head:
            return f"wide work: report ask '{cue}'"
    n = _count_of_items(head)
    if n:
        return f"wide work: {n} items"
    items = len(_BULLET.findall(head))
    if items >= MIN_PARTS:
        return f"wide work: {items} list items"
    for sentence in _SENTENCE.split(head):
        parts = sentence.count(",") + sentence.count("，") + sentence.count("、") + sentence.count(" and ") + 1
        # Four or more short parts read as a list of entities ("AWS, Azure, GCP and Oracle"), not clauses.
        if parts >= MIN_PARTS + 1 and len(sentence) <= 25 * parts:
            return f"wide work: {parts} named items"
    return None
