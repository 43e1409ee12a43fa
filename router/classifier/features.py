"""What the classifier sees of a request: a `RequestView` of the chat, its terms and structure.

The same code featurizes training rows and live requests, so training and serving cannot drift.
Every step is bounded: long turns are read through a head + tail window, and whole-text
measures use C-speed `str` methods only, so a 100k-character prompt costs about as much as a 2k one.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, pairwise
from typing import Any, Final, cast

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
_PADDED: Final = tuple((mark, f" {mark} ") for mark in _PUNCTUATION)
_ASCII_PADDED: Final = tuple((mark, padded) for mark, padded in _PADDED if mark.isascii())  # all ASCII text can hold
# Slow path (text with CJK): one token per CJK character, since there are no spaces to split on.
_TOKEN: Final = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_CJK_CHAR: Final = re.compile(rf"[{_CJK}]")
_CODE_LINE: Final = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|#include|public |private |func |fn |function\b|"
    r"const |let |var |return\b|if \(|for \(|while \(|}|\)|.*[;{]\s*$|\w+\(.*\)\s*$|[\w.]+\s*=\s*\S)",
    re.MULTILINE,
)
# _CODE_LINE without `.*[;{]\s*$` and `\w+\(.*\)\s*$`: on a line without `;`, `{` and `(` those fail
# anyway, after backtracking through the whole line (most of the cost on prose).
_CODE_LINE_PLAIN: Final = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|#include|public |private |func |fn |function\b|"
    r"const |let |var |return\b|if \(|for \(|while \(|}|\)|[\w.]+\s*=\s*\S)",
    re.MULTILINE,
)
_NON_SPACE: Final = re.compile(r"\S")
_LONG_LINE: Final = 64  # characters per line above which matching line by line beats findall
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


def tokens(text: str) -> list[str]:
    """Lower-cased tokens (every digit becomes `0`): words, single punctuation marks and, in text with
    CJK, single CJK characters."""
    if has_cjk(text):
        return _TOKEN.findall(text.lower().translate(_TRANSLATE))
    # The tokens of the regex `[punctuation]|[^\s punctuation]+`, at C speed: pad each punctuation mark the text holds
    # with spaces and split on whitespace (about 2.5x faster than the regex; str.translate with an
    # expanding table is slower still).
    lower = text.lower()
    ascii_only = lower.isascii()
    if ascii_only:
        lower = lower.encode().translate(_ASCII_DIGITS).decode()
    else:
        for digit in "123456789":
            if digit in lower:
                lower = lower.replace(digit, "0")
    for mark, padded in _ASCII_PADDED if ascii_only else _PADDED:
        if mark in lower:
            lower = lower.replace(mark, padded)
    return lower.split()


def terms(text: str, *, bounds: bool = False) -> list[str]:
    """Unigrams and bigrams of the lower-cased text (every digit becomes `0`); with `bounds`, the
    bigrams also pair the first and last tokens with start/end markers."""
    words = tokens(text)
    bigrams = list(map(" ".join, pairwise([BOS, *words, EOS] if bounds and words else words)))
    return words + bigrams


def user_window(text: str) -> str:
    """The part of the last user turn read word by word."""
    if len(text) > CJK_HEAD_CHARS + CJK_TAIL_CHARS and has_cjk(text[:CJK_HEAD_CHARS]):
        return window(text, CJK_HEAD_CHARS, CJK_TAIL_CHARS)
    return window(text)


def weighted_terms(view: RequestView) -> Mapping[str, float]:
    """Term counts: the last user turn at full weight, system prompt and history down-weighted."""
    words = tokens(user_window(view.last_user))
    counts: Counter[str] = Counter(words)  # unigrams, then bigrams (with the start/end markers), as `terms`
    if words:
        counts.update(map(" ".join, pairwise(chain((BOS,), words, (EOS,)))))
    weighted = cast("dict[str, float]", counts)  # Counter adds floats fine; saves a copy on the hot path
    context = [(window(view.system, CONTEXT_CHARS, 0), SYSTEM_WEIGHT)] if view.system else []
    context += [(window(text, CONTEXT_CHARS, 0), HISTORY_WEIGHT) for text in view.history]
    for text, weight in context:
        # One addition per distinct term, not per occurrence (a term seen n times adds n * weight, which
        # equals n additions of weight to within a rounding).
        for term, n in _context_counts(text):
            weighted[term] = weighted.get(term, 0.0) + n * weight
    return weighted


@lru_cache(maxsize=512)
def _context_counts(text: str) -> tuple[tuple[str, int], ...]:
    """Term counts of a system prompt or earlier turn (already windowed, so at most CONTEXT_CHARS long).
    Cached: an application sends the same system prompt with every request, and a conversation resends
    its earlier turns, so most requests find theirs here (512 x 600 characters bounds the memory)."""
    return tuple(Counter(terms(text)).items())


def line_matches(pattern: re.Pattern[str], text: str, plain: re.Pattern[str] | None = None) -> int:
    """`len(pattern.findall(text))` for a MULTILINE pattern that starts with `^` and never matches empty.
    On text of long lines (prose) the regex engine is not stepped through every character: a match can
    only start at a line start, so `pattern.match` is tried there (after a match, at the first line start
    where findall would look). On short lines (code) findall is cheaper than a Python loop per line.
    `plain`, if given, is `pattern` without its alternatives that need `;`, `{` or `(` on the first
    non-blank line, tried on long lines without them (those alternatives backtrack through the line)."""
    if len(text) < _LONG_LINE * (text.count("\n") + 1):
        return len(pattern.findall(text))
    n = 0
    pos = 0
    match = pattern.match
    find = text.find
    while True:
        if plain is not None:
            first = _NON_SPACE.search(text, pos)  # `^\s*` may skip blank lines: the line that counts is here
            if first is None:
                return n
            start = first.start()
            end = find("\n", start)
            end = len(text) if end < 0 else end
            if end - start > _LONG_LINE and find(";", start, end) < 0 and find("{", start, end) < 0 \
                    and find("(", start, end) < 0:
                match = plain.match
            else:
                match = pattern.match
        found = match(text, pos)
        if found is not None:
            n += 1
            pos = found.end()
            if text[pos - 1] == "\n":  # the match ended at a line start: findall tries there next
                continue
        newline = find("\n", pos)
        if newline < 0:
            return n
        pos = newline + 1


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
    # ASCII digits are single bytes in UTF-8 and no other character's bytes look like one.
    utf8 = text.encode("utf-8", "replace")
    digits = len(utf8) - len(utf8.translate(None, b"0123456789"))
    maybe_trace = any(marker in text for marker in _TRACE_MARKERS)
    maybe_math = digits > 0 or "\\" in text or "$" in text or any(c in text for c in "²³√π∑∫≤≥≠")
    code_lines = min(line_matches(_CODE_LINE, text, _CODE_LINE_PLAIN) / lines, 1.0) if lines >= 3 else 0.0
    bins = [0.0] * (len(_LENGTH_EDGES) + 1)
    bins[bisect_right(_LENGTH_EDGES, chars)] = 1.0
    paragraphs = [p for p in text.split("\n\n") if p.strip()] if "\n\n" in text else [text]
    longest = max(map(len, paragraphs), default=0)  # a turn of blank paragraphs has none
    return [
        math.log1p(chars) / 12.0,
        math.log1p(view.input_tokens) / 12.0,
        1.0 if chars >= 8000 else 0.0,
        1.0 if chars >= 20000 else 0.0,
        1.0 if _has_fence(full) else 0.0,
        code_lines,
        _count(_TRACE, text, 3) / 3.0 if maybe_trace else 0.0,
        _count(_MATH, text, 5) / 5.0 if maybe_math else 0.0,
        math.log1p(line_matches(_LIST_ITEM, text)) / 3.0 if lines >= 2 else 0.0,
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


def _has_fence(text: str) -> bool:
    """'```' in text, read from the first backtick: a single-character find runs at memchr speed, so text
    without backticks (most of it) is not scanned for the 3-character pattern (2-3x slower)."""
    first = text.find("`")
    return first >= 0 and text.find("```", first) >= 0


_QUESTION_MARKS: Final = ("?", "？", "؟", "\u037e")  # Latin/CJK, Arabic, Greek question marks


def _asks(paragraph: str) -> bool:
    """A short paragraph that asks something: the question next to supplied material (reading QA)."""
    return len(paragraph) < 300 and any(mark in paragraph for mark in _QUESTION_MARKS)
