"""Frozen copy of the classifier's inference code as of main d57bd23 (features FEATURES_VERSION 8):
the oracle `test_classifier_speed_equivalence.py` holds the optimised code in router/classifier to.

Do not optimise or tidy this file: its worth is that it is the old, slow, obviously-read code. When
the features change meaning (a new FEATURES_VERSION), replace it with a copy of the new reference.
Only the probability code (`reference_probabilities`, from TaskClassifier.probabilities) and the
`reference_classify` wrapper are added; features and estimates are verbatim. Round 4 of issue 17
added the wide-work evidence (router/classifier/wide_work.py, copied as `wide_work_evidence`) that
the model's `decomposable` needs, and its use in `classify`; features are unchanged (version 8).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice, pairwise
from typing import Any, Final, cast

import numpy as np

from router.classifier.artifact import Artifact

# Bumped whenever terms or dense features change meaning; the card records it and loading
# an artifact built with another version fails (retrain with `model-router train`).
FEATURES_VERSION: Final = 8

# Head + tail of the last user turn that is read word by word; the question usually sits at
# one end of a pasted document.
HEAD_CHARS: Final = 1200
TAIL_CHARS: Final = 400
CJK_HEAD_CHARS: Final = 320  # a CJK character is a token: the same token budget spans fewer characters
CJK_TAIL_CHARS: Final = 120
CONTEXT_CHARS: Final = 600  # window for system prompt and earlier turns
SYSTEM_WEIGHT: Final = 0.3  # the system prompt sets the scene; the last user turn asks
HISTORY_WEIGHT: Final = 0.2
HISTORY_TURNS: Final = 3

IMAGE_PART_TOKENS: Final = 1000  # rough; providers bill 85-1500 tokens per image
VIDEO_PART_TOKENS: Final = 4000

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Fast path (no CJK): pad punctuation with spaces and map every digit to 0 in one C-speed translate,
# then split on whitespace. `{`, `;`, `=`, `$` and `?` say a lot about code and math, so they stay.
_PUNCTUATION: Final = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~，。？！：；、（）《》“”‘’…"
_TRANSLATE: Final = str.maketrans({**{c: f" {c} " for c in _PUNCTUATION}, **{d: "0" for d in "123456789"}})
_DIGITS: Final = str.maketrans("123456789", "000000000")
_ASCII_DIGITS: Final = bytes.maketrans(b"123456789", b"000000000")
_WORD_OR_PUNCTUATION: Final = re.compile(f"[{re.escape(_PUNCTUATION)}]|[^\\s{re.escape(_PUNCTUATION)}]+")
# Slow path (text with CJK): one token per CJK character, since there are no spaces to split on.
_TOKEN: Final = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_CJK_CHAR: Final = re.compile(rf"[{_CJK}]")
_CODE_LINE: Final = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|#include|public |private |func |fn |function\b|"
    r"const |let |var |return\b|if \(|for \(|while \(|}|\)|.*[;{]\s*$|\w+\(.*\)\s*$|[\w.]+\s*=\s*\S)",
    re.MULTILINE,
)
_TRACE: Final = re.compile(
    r"Traceback \(most recent call last\)|^\s+at [\w.$<>]+\(|^\s*File \"|(?:Error|Exception)\b:|"
    r"\berror\[?E?\d*\]?:|panicked at|Segmentation fault|undefined reference|npm ERR!",
    re.MULTILINE,
)
_MATH: Final = re.compile(r"\d\s*[-+*/^=<>]\s*\d|\\(?:frac|int|sum|sqrt|cdot|le|ge)|\$[^$\n]{1,80}\$|[²³√π∑∫≤≥≠]")
_LIST_ITEM: Final = re.compile(
    r"^\s*(?:[-*•·]|\d{1,3}[.)、]|[a-zA-Z][.)]|[（(]?[一二三四五六七八九十]+[)）、.])\s+\S", re.MULTILINE
)
_TRACE_MARKERS: Final = ("Error", "error", "Exception", "Traceback", "\tat ", "    at ", 'File "', "panicked",
                          "fault", "undefined reference", "ERR!")

DENSE_NAMES: Final = (
    "log_chars_last_user",
    "log_tokens_total",
    "long_doc_8k",
    "long_doc_20k",
    "code_fence",
    "code_lines",
    "stack_trace",
    "math_notation",
    "list_items",
    "questions",
    "digit_ratio",
    "cjk_ratio",
    "has_system",
    "turns",
    # Length as bins, not one slope: code files (0.4-5k chars), short passages with a question (<1.5k)
    # and 2-8k-token documents sit at different lengths, and one linear term cannot keep them apart.
    "len_under_40",
    "len_40_120",
    "len_120_400",
    "len_400_1200",
    "len_1200_3000",
    "len_3000_6000",
    "len_6000_12000",
    "len_12000_24000",
    "len_24000_plus",
    "code_and_long",  # code-like lines in a turn over 1,000 chars: a pasted file, not a document
    "prose_block",  # a paragraph of 400+ chars: supplied material, whatever the request is
    "short_request_at_end",  # last paragraph under 300 chars after longer text: material, then the ask
    "short_request_at_start",  # first paragraph under 300 chars before longer text: the ask, then material
    "passage_question",  # a short question (any script's question mark) before or after a 400+ char passage
    "lex_creative",
    "lex_code",
    "lex_environment",
    "lex_wide",
    "lex_reasoning",
    "lex_lookup",
    "lex_edit",
)
_LENGTH_EDGES: Final = (40, 120, 400, 1200, 3000, 6000, 12000, 24000)

# What the request asks for, pooled over many words and languages: a benchmark's own phrasing is
# unseen on new traffic, but "poem", "gedicht" and "诗" all say creative. One dense feature per
# lexicon (log count), so a cue learned from one source carries to every source that uses any word
# of it. Terms are as `terms()` makes them: lower-cased, CJK characters joined by a space.
LEXICONS: Final[dict[str, tuple[str, ...]]] = {
    "lex_creative": (
        "poem", "poems", "poetry", "story", "stories", "lyrics", "song", "haiku", "limerick", "sonnet", "slogan",
        "slogans", "tagline", "taglines", "jingle", "toast", "joke", "jokes", "fable", "tale", "novel", "screenplay",
        "script", "scene", "monologue", "dialogue", "character", "characters", "roleplay", "role-play", "pretend",
        "imagine", "fictional", "fiction", "fantasy", "verse", "rap", "ballad", "caption", "names", "brainstorm",
        "creative", "narrative", "narrator", "plot", "villain", "hero", "rhyme", "rhyming", "ode", "essay",
        "speech", "copy", "advert", "ad", "poema", "cuento", "historia", "poème", "histoire", "chanson",
        "gedicht", "geschichte", "lied", "стихотворение", "стих", "рассказ", "сказку", "сказка", "песню",
        "poesia", "conto", "诗", "诗 歌", "故 事", "小 说", "歌 词", "文 案", "剧 本", "台 词", "口 号", "创 作",
        "詩", "物 語", "小 説",
    ),
    "lex_code": (
        "code", "function", "functions", "script", "bug", "error", "exception", "traceback", "compile", "compiler",
        "python", "javascript", "java", "typescript", "sql", "bash", "shell", "regex", "api", "class", "method",
        "variable", "array", "loop", "debug", "refactor", "git", "npm", "pip", "docker", "kubernetes", "react",
        "css", "html", "json", "query", "program", "programming", "algorithm", "implement", "implementation",
        "library", "framework", "deploy", "build", "test", "tests", "unit", "stack", "runtime", "syntax",
        "c++", "rust", "golang", "php", "ruby", "kotlin", "swift", "node", "database", "endpoint", "null",
        "none", "undefined", "int", "string", "return", "def", "import", "const", "async", "thread",
        "代 码", "函 数", "报 错", "编 程", "程 序", "脚 本", "コ ー ド", "関 数", "エ ラ ー", "código", "función",
        "fonction", "funktion", "код", "функци", "ошибка",
    ),
    "lex_environment": (
        "settings", "app", "browser", "tab", "tabs", "click", "open", "cart", "checkout", "order", "orders",
        "account", "profile", "folder", "desktop", "inbox", "calendar", "alarm", "notification",
        "notifications", "wifi", "wi-fi", "bluetooth", "repository", "website", "site", "download", "upload",
        "install", "enable", "disable", "turn", "switch", "my", "me", "book", "reserve", "cancel", "subscribe",
        "unsubscribe", "send", "forward", "reply", "delete", "remove", "rename", "move", "save", "add",
        "set", "schedule", "navigate", "go", "log", "sign", "page", "window", "screen", "phone", "volume",
        "brightness", "theme", "mode", "star", "fork", "playlist", "contacts", "message", "email",
        "打 开", "设 置", "搜 索", "点 击", "帮 我", "我 的", "下 单", "预 订", "发 送", "删 除", "关 注",
        "設 定", "開 い", "検 索", "abre", "activa", "öffne", "ouvre", "открой", "включи",
    ),
    "lex_wide": (
        "each", "every", "compare", "comparison", "versus", "vs", "table", "spreadsheet", "top", "research",
        "report", "reports", "survey", "landscape", "review", "competitors", "companies", "countries",
        "cities", "products", "universities", "following", "these", "all", "across", "side-by-side",
        "benchmark", "analyze", "analyse", "analysis", "overview", "trends", "market", "literature",
        "分 别", "逐 一", "比 较", "调 研", "报 告", "各 个", "每 个", "研 究", "対 比", "比 較", "それぞれ",
        "cada", "chaque", "jede", "jeden", "каждый", "каждого", "сравни", "compara", "compare",
    ),
    "lex_reasoning": (
        "prove", "proof", "calculate", "compute", "solve", "probability", "percent", "%", "average", "total",
        "therefore", "conclusion", "follows", "premise", "premises", "true", "false", "if", "then", "deduce",
        "infer", "logic", "logical", "puzzle", "riddle", "equation", "sum", "product", "ratio", "how many",
        "how much", "cost", "costs", "minutes", "hours", "km", "$", "=", "+", "*", "step", "steps",
        "求", "计 算", "多 少", "几", "证 明", "概 率", "推 理", "сколько", "найдите", "докажите", "вычисли",
        "cuánto", "cuántos", "combien", "wie viele", "wie viel", "beweise", "いくつ", "何 個", "計 算",
    ),
    "lex_lookup": (
        "what", "who", "when", "where", "which", "why", "how", "define", "definition", "meaning", "mean",
        "explain", "briefly", "difference", "什 么", "谁", "哪", "为 什", "怎 么", "是 什", "何", "誰", "qué",
        "quién", "dónde", "cuál", "quoi", "qui", "où", "was", "wer", "wo", "что", "кто", "где", "почему",
    ),
    "lex_edit": (
        "fix", "correct", "proofread", "grammar", "spelling", "typos", "rewrite", "rephrase", "paraphrase",
        "summarise", "summarize", "summary", "tl", "extract", "classify", "sentiment", "positive", "negative",
        "passage", "paragraph", "sentence", "text", "translate", "translation", "according", "tone",
        "formal", "informal", "polite", "shorten", "simplify", "traduce", "traducir", "traduis", "traduire",
        "traduza", "übersetze", "übersetzen", "переведи", "перевод", "翻 译", "翻 訳", "改 写", "润 色", "总 结",
        "概 括", "修 改", "语 病", "要 約", "corrige", "korrigiere", "исправь",
    ),
}
_LEXICON_OF: Final = {term: i for i, words in enumerate(LEXICONS.values()) for term in words}


@dataclass(frozen=True, slots=True)
class RequestView:
    """The parts of an OpenAI chat request the classifier reads."""

    last_user: str
    system: str
    history: tuple[str, ...]  # earlier turns, newest first, at most HISTORY_TURNS
    image_parts: int
    video_parts: int
    audio_parts: int
    tool_turns: bool  # a `tool` message or an assistant turn with tool_calls
    input_tokens: int
    messages: int


def _content_text(content: Any, counts: list[int]) -> str:
    """Text of one message's content; counts image/video/audio parts into `counts` in place."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind in ("image_url", "input_image", "image"):
            counts[0] += 1
        elif kind in ("video_url", "input_video", "video"):
            counts[1] += 1
        elif kind in ("input_audio", "audio"):
            counts[2] += 1
    return "\n".join(texts)


def view_of(messages: Any) -> RequestView:
    """Read a list of chat messages of any valid (or slightly odd) shape; never raises."""
    counts = [0, 0, 0]
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    tool_turns = False
    utf8_bytes = 0
    n = 0
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        n += 1
        role = message.get("role")
        text = _content_text(message.get("content"), counts)
        # ~4 UTF-8 bytes per token; an ASCII str knows it is ASCII, so the common case copies nothing.
        utf8_bytes += len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        if role == "tool" or role == "function" or message.get("tool_calls") or message.get("function_call"):
            tool_turns = True
        if role in ("system", "developer"):
            system.append(text)
        elif text:
            turns.append((str(role), text))
    last_user = ""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i][0] == "user":
            last_user = turns.pop(i)[1]
            break
    else:
        if turns:  # no user turn: read the newest text there is
            last_user = turns.pop()[1]
    history = tuple(text for _, text in reversed(turns[-HISTORY_TURNS:]))
    tokens = (
        math.ceil(utf8_bytes / 4) + 4 * n + IMAGE_PART_TOKENS * counts[0] + VIDEO_PART_TOKENS * counts[1]
    )
    return RequestView(
        last_user=last_user,
        system="\n".join(system),
        history=history,
        image_parts=counts[0],
        video_parts=counts[1],
        audio_parts=counts[2],
        tool_turns=tool_turns,
        input_tokens=tokens,
        messages=n,
    )


def window(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:] if tail else text[:head]


def has_cjk(text: str) -> bool:
    return not text.isascii() and _CJK_CHAR.search(text) is not None


BOS: Final = "\x02"  # marks the first and last token of the user's turn: "<s> open" is a command,
EOS: Final = "\x03"  # "? </s>" a question; the position says more than the word alone


def terms(text: str, *, bounds: bool = False) -> list[str]:
    """Unigrams and bigrams of the lower-cased text (every digit becomes `0`); with `bounds`, the
    bigrams also pair the first and last tokens with start/end markers."""
    if has_cjk(text):
        tokens = _TOKEN.findall(text.lower().translate(_TRANSLATE))
    else:  # same tokens, without str.translate's per-character expansion (about twice as fast)
        lower = text.lower()
        lower = lower.encode().translate(_ASCII_DIGITS).decode() if lower.isascii() else lower.translate(_DIGITS)
        tokens = _WORD_OR_PUNCTUATION.findall(lower)
    bigrams = list(map(" ".join, pairwise([BOS, *tokens, EOS] if bounds and tokens else tokens)))
    return tokens + bigrams


def user_window(text: str) -> str:
    """The part of the last user turn read word by word."""
    if len(text) > CJK_HEAD_CHARS + CJK_TAIL_CHARS and has_cjk(text[:CJK_HEAD_CHARS]):
        return window(text, CJK_HEAD_CHARS, CJK_TAIL_CHARS)
    return window(text)


def weighted_terms(view: RequestView) -> Mapping[str, float]:
    """Term counts: the last user turn at full weight, system prompt and history down-weighted."""
    counts: Counter[str] = Counter(terms(user_window(view.last_user), bounds=True))
    weighted = cast("dict[str, float]", counts)  # Counter adds floats fine; saves a copy on the hot path
    context = [(window(view.system, CONTEXT_CHARS, 0), SYSTEM_WEIGHT)] if view.system else []
    context += [(window(text, CONTEXT_CHARS, 0), HISTORY_WEIGHT) for text in view.history]
    for text, weight in context:
        for term in terms(text):
            weighted[term] = weighted.get(term, 0.0) + weight
    return weighted


def _count(pattern: re.Pattern[str], text: str, cap: int) -> int:
    """Matches of `pattern`, counting no further than `cap` (the feature saturates there anyway)."""
    n = 0
    for _ in pattern.finditer(text):
        n += 1
        if n >= cap:
            break
    return n


def lexicon_of(term: str) -> int | None:
    """Index (in LEXICONS order) of the lexicon `term` belongs to, if any."""
    return _LEXICON_OF.get(term)


def lexicon_features(hits: list[float]) -> list[float]:
    """The lexicon features from summed term counts per lexicon (order matches LEXICONS)."""
    return [math.log1p(h) / 3.0 for h in hits]


def lexicon_counts(counts: Mapping[str, float]) -> list[float]:
    """log1p of how often each lexicon's terms occur (order matches LEXICONS)."""
    hits = [0.0] * len(LEXICONS)
    get = _LEXICON_OF.get
    for term, count in counts.items():
        i = get(term)
        if i is not None:
            hits[i] += count
    return lexicon_features(hits)


def dense(view: RequestView, counts: Mapping[str, float]) -> list[float]:
    """Structure of the last user turn and its lexicon counts (`counts` from `weighted_terms`), each
    roughly in [0, 1]; order matches DENSE_NAMES."""
    return [*structure(view), *lexicon_counts(counts)]


def structure(view: RequestView) -> list[float]:
    """The structural part of `dense` (every feature but the lexicons).
    Lengths come from the whole turn; patterns are searched in the window, and only when a cheap
    substring test says they can occur."""
    full = view.last_user
    text = user_window(full)
    chars = len(full)
    lines = text.count("\n") + 1
    seen = max(len(text), 1)
    digits = sum(map(text.count, "0123456789"))
    maybe_trace = any(marker in text for marker in _TRACE_MARKERS)
    maybe_math = digits > 0 or "\\" in text or "$" in text or any(c in text for c in "²³√π∑∫≤≥≠")
    code_lines = min(len(_CODE_LINE.findall(text)) / lines, 1.0) if lines >= 3 else 0.0
    bins = [0.0] * (len(_LENGTH_EDGES) + 1)
    bins[bisect_right(_LENGTH_EDGES, chars)] = 1.0
    paragraphs = [p for p in text.split("\n\n") if p.strip()] if "\n\n" in text else [text]
    longest = max(map(len, paragraphs))
    return [
        math.log1p(chars) / 12.0,
        math.log1p(view.input_tokens) / 12.0,
        1.0 if chars >= 8000 else 0.0,
        1.0 if chars >= 20000 else 0.0,
        1.0 if "```" in full else 0.0,
        code_lines,
        _count(_TRACE, text, 3) / 3.0 if maybe_trace else 0.0,
        _count(_MATH, text, 5) / 5.0 if maybe_math else 0.0,
        math.log1p(len(_LIST_ITEM.findall(text))) / 3.0 if lines >= 2 else 0.0,
        math.log1p(text.count("?") + text.count("？")) / 3.0,
        digits / seen,
        len(_CJK_CHAR.findall(text)) / seen if has_cjk(text) else 0.0,
        1.0 if view.system else 0.0,
        math.log1p(view.messages) / 4.0,
        *bins,
        code_lines if chars >= 1000 else 0.0,
        1.0 if longest >= 400 else 0.0,
        1.0 if len(paragraphs) > 1 and len(paragraphs[-1]) < 300 and longest >= 400 else 0.0,
        1.0 if len(paragraphs) > 1 and len(paragraphs[0]) < 300 and longest >= 400 else 0.0,
        1.0 if len(paragraphs) > 1 and longest >= 400 and (_asks(paragraphs[0]) or _asks(paragraphs[-1])) else 0.0,
    ]


_QUESTION_MARKS: Final = ("?", "？", "؟", "\u037e")  # Latin/CJK, Arabic, Greek question marks


def _asks(paragraph: str) -> bool:
    """A short paragraph that asks something: the question next to supplied material (reading QA)."""
    return len(paragraph) < 300 and any(mark in paragraph for mark in _QUESTION_MARKS)


# ---- router/classifier/estimates.py, verbatim ----



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
    items = len(_ITEM.findall(head))
    if items >= 2:
        best = max(best, items)
    for sentence in _SENTENCE.split(head):
        parts = _SEPARATOR.split(sentence)
        # Three or more short parts read as a list of entities, not as clauses of prose.
        if len(parts) >= 3 and len(sentence) <= 30 * len(parts):
            best = max(best, len(parts))
    questions = head.count("?") + head.count("？")
    if questions >= 2:
        best = max(best, questions)
    return min(best, MAX_SUBTASKS)


def answer_length(text: str, task_type: str, n_subtasks: int) -> str:
    """Expected answer length: an explicit word count wins, then wording hints, then the task type."""
    head = text[:HEAD].lower()
    counts = [int(m.group(1)) for m in _WORD_COUNT.finditer(head)]
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


# ---- TaskClassifier.probabilities / classify at d57bd23, as functions over an Artifact ----



class ReferenceModel:
    """TaskClassifier's probability code at d57bd23 (the index/gather/dot layout it used)."""

    def __init__(self, model: Artifact) -> None:
        self._labels = model.labels
        self._index: dict[str, tuple[int, float, int | None]] = {
            term: (i, idf, lexicon_of(term))
            for i, (term, idf) in enumerate(zip(model.terms, model.idf.tolist(), strict=True))}
        for lexicon, words in enumerate(LEXICONS.values()):
            for word in words:
                self._index.setdefault(word, (-1, 0.0, lexicon))
        self._weights = np.vstack([model.coef, model.dense_coef]).astype(np.float64)
        self._dense_rows = list(range(len(model.terms), len(model.terms) + model.dense_coef.shape[0]))
        self._intercept = model.intercept.astype(np.float64).tolist()
        self._inverse_temperature = 1.0 / model.temperature

    def probabilities(self, view: RequestView) -> dict[str, float]:
        counts = weighted_terms(view)
        get = self._index.get
        rows: list[int] = []
        values: list[float] = []
        lexicon_hits = [0.0] * len(LEXICONS)
        for term, count in counts.items():
            hit = get(term)
            if hit is not None:
                row, idf, lexicon = hit
                if row >= 0:
                    rows.append(row)
                    values.append(math.log1p(count) * idf)
                if lexicon is not None:
                    lexicon_hits[lexicon] += count
        norm = math.sqrt(sum(v * v for v in values))
        if norm > 0.0:
            values = [v / norm for v in values]
        rows += self._dense_rows
        values += structure(view)
        values += lexicon_features(lexicon_hits)
        logits = (np.asarray(values) @ self._weights[rows]).tolist()
        scaled = [(z + b) * self._inverse_temperature for z, b in zip(logits, self._intercept, strict=True)]
        top = max(scaled)
        exp = [math.exp(z - top) for z in scaled]
        total = sum(exp)
        return {label: e / total for label, e in zip(self._labels, exp, strict=True)}

    def classify(self, messages: Any, *, tools: list[Any] | None = None, confidence_floor: float = 0.0,
                 fallback: str = "reasoning", long_context_tokens: int) -> dict[str, Any]:
        """TaskClassifier.classify at d57bd23, returning its fields as a dict."""
        view = view_of(messages)
        probs = self.probabilities(view)
        rule: str | None = None
        if view.image_parts or view.video_parts:
            task_type, rule = "vision", "vision: image part" if view.image_parts else "vision: video part"
        elif tools:
            task_type, rule = "agentic", "agentic: tools attached"
        elif view.tool_turns:
            task_type, rule = "agentic", "agentic: tool turns in the chat"
        elif view.input_tokens >= long_context_tokens:
            task_type = "long_context"
            rule = f"long_context: {view.input_tokens} input tokens >= {long_context_tokens}"
        else:
            ranked = sorted(probs, key=probs.__getitem__, reverse=True)
            task_type = ranked[0]
            if task_type == "decomposable" and wide_work_evidence(view.last_user) is None:
                task_type = ranked[1]
        if rule is not None:
            confidence = 1.0
        elif probs[task_type] < confidence_floor:
            rule = f"floor: {task_type} at {probs[task_type]:.2f} < {confidence_floor:.2f}, fell back to {fallback}"
            task_type = fallback
            confidence = probs.get(fallback, 0.0)
        else:
            confidence = probs[task_type]
        n_subtasks = subtasks(view.last_user)
        return {
            "task_type": task_type,
            "confidence": confidence if math.isfinite(confidence) else 0.0,
            "probabilities": probs,
            "answer_length": answer_length(view.last_user, task_type, n_subtasks),
            "subtasks": n_subtasks,
            "input_tokens": view.input_tokens,
            "rule": rule,
            "label_source": "model" if rule is None else "rule",
        }


# --- wide-work evidence (router/classifier/wide_work.py, issue 17 round 4) ---

WIDE_HEAD: Final = 1000  # wide work says so near the start
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
_WIDE_NUMBER_WORDS: Final = {
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
        n = (int(word) if len(word) <= 3 else 0) if word.isdecimal() else _WIDE_NUMBER_WORDS.get(word, 0)
        if not MIN_PARTS <= n <= 500:
            continue
        before = words[i - 1] if i else ""
        if before in _COUNT_BEFORE or (before == "least" and i >= 2 and words[i - 2] == "at") \
                or (i + 1 < len(words) and words[i + 1] in _COUNT_AFTER):
            return n
    for match in _CJK_COUNT.finditer(head):
        word = match.group(1)
        n = int(word) if word.isdecimal() else _WIDE_NUMBER_WORDS.get(word, 0)
        if MIN_PARTS <= n <= 500:
            return n
    return 0


_BULLET: Final = re.compile(r"^\s*(?:[-*•·]|\d{1,3}[.)、])\s+\S", re.MULTILINE)
_WIDE_SENTENCE: Final = re.compile(r"[.?!。？！:：;；\n]")


def wide_work_evidence(text: str) -> str | None:
    """Why `text` reads as wide work (a short reason for the decision log), or None when nothing does."""
    head = " " + text[:WIDE_HEAD].lower()  # a leading space: cues that start with one match at the start too
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
    for sentence in _WIDE_SENTENCE.split(head):
        parts = sentence.count(",") + sentence.count("，") + sentence.count("、") + sentence.count(" and ") + 1
        # Four or more short parts read as a list of entities ("AWS, Azure, GCP and Oracle"), not clauses.
        if parts >= MIN_PARTS + 1 and len(sentence) <= 25 * parts:
            return f"wide work: {parts} named items"
    return None
