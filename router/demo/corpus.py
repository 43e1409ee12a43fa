"""A bundled local corpus for the demo search tool: a few hundred short documents, generated
deterministically (same text on every machine and run), and a small term-overlap search over it.

Documents are facts *about* invented-but-plausible measurements of real subjects (cities, languages,
clouds, …), so a sub-agent's answer can cite one by id and a test can check the citation.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import cache

_SUBJECTS = (
    # (subject, kind)
    *((c, "city") for c in ("Lisbon", "Porto", "Madrid", "Paris", "Berlin", "Vienna", "Prague", "Warsaw",
                            "Oslo", "Helsinki", "Tokyo", "Osaka", "Seoul", "Singapore", "Sydney", "Toronto",
                            "Chicago", "Denver", "Nairobi", "Lagos")),
    *((c, "language") for c in ("Python", "Rust", "Go", "Java", "Kotlin", "Swift", "TypeScript", "Haskell",
                                "Elixir", "Zig")),
    *((c, "cloud") for c in ("AWS", "Azure", "GCP", "Oracle Cloud", "Hetzner", "OVHcloud", "DigitalOcean",
                             "Linode")),
    *((c, "database") for c in ("PostgreSQL", "MySQL", "SQLite", "Redis", "Cassandra", "MongoDB", "ClickHouse",
                                "DuckDB")),
    *((c, "element") for c in ("lithium", "cobalt", "nickel", "copper", "silicon", "gallium", "helium",
                               "neodymium")),
    *((c, "protocol") for c in ("HTTP/3", "QUIC", "gRPC", "MQTT", "WebSocket", "OAuth 2.1")),
)
_ASPECTS = {
    "city": ("population", "rainfall", "transit", "housing", "tourism"),
    "language": ("adoption", "performance", "tooling", "safety", "hiring"),
    "cloud": ("pricing", "regions", "outages", "egress", "support"),
    "database": ("throughput", "replication", "licensing", "adoption", "backups"),
    "element": ("supply", "price", "recycling", "mining", "demand"),
    "protocol": ("latency", "adoption", "security", "overhead", "tooling"),
}
_TEMPLATES = {
    "population": "{s} had about {n} thousand residents in the {y} survey, {d} percent more than a decade earlier.",
    "rainfall": "{s} receives about {n} millimetres of rain a year; the wettest month since {y} brought {d} mm.",
    "transit": "{s} runs {d} metro or tram lines carrying about {n} thousand riders a day (figures from {y}).",
    "housing": "Median rent in {s} rose {d} percent between {y} and last year, to about {n} euros a month.",
    "tourism": "{s} counted about {n} thousand overnight visitors in {y}, {d} percent of them from abroad.",
    "adoption": "{s} is used by about {d} percent of surveyed teams in {y}, across roughly {n} thousand projects.",
    "performance": "In the {y} benchmark round {s} finished {d} percent faster than the median entry ({n} ms).",
    "tooling": "{s} shipped {d} major tooling releases since {y}; its package index lists about {n} thousand packages.",
    "safety": "An audit in {y} found {d} memory-safety issues per {n} thousand lines in {s} code bases.",
    "hiring": "Job boards listed about {n} open {s} positions in {y}, {d} percent of them remote.",
    "pricing": "{s} cut its general-purpose compute price by {d} percent in {y}, to about {n} dollars a month.",
    "regions": "{s} operated {d} regions in {y} and announced about {n} new availability zones.",
    "outages": "{s} reported {d} major outages in {y}, with a median recovery time of {n} minutes.",
    "egress": "{s} charged about {n} dollars per terabyte of egress in {y}; {d} percent of customers pay less.",
    "support": "{s} answered {d} percent of priority tickets within an hour in {y} (about {n} thousand tickets).",
    "throughput": "{s} sustained about {n} thousand writes per second in the {y} test, {d} percent above its baseline.",
    "replication": "{s} replication lag stayed under {d} ms at {n} thousand operations per second ({y} study).",
    "licensing": "{s} changed licensing terms {d} times since {y}; about {n} vendors redistribute it.",
    "backups": "Restoring a {n} GB {s} backup took about {d} minutes in the {y} drill.",
    "supply": "Global {s} supply reached about {n} thousand tonnes in {y}, {d} percent from recycling.",
    "price": "The {s} price averaged about {n} dollars per tonne in {y}, {d} percent above the prior year.",
    "recycling": "About {d} percent of {s} was recovered from scrap in {y}, some {n} thousand tonnes.",
    "mining": "{d} countries mined {s} in {y}; the largest mine produced about {n} thousand tonnes.",
    "demand": "Demand for {s} grew {d} percent in {y}, to about {n} thousand tonnes.",
    "latency": "{s} cut median handshake latency by {d} percent in {y} measurements ({n} ms at the tail).",
    "overhead": "{s} framing overhead was about {d} bytes per message in {y}, {n} bytes with headers.",
    "security": "{d} security advisories named {s} implementations in {y}; about {n} were rated critical.",
}
_TOKEN = re.compile(r"[a-z0-9][a-z0-9+./-]*")
_STOP = frozenset("a an the of in on for to and or is are was were what how about by with from its it this that "
                  "only item research find look up note give tell me please each these".split())


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    title: str
    text: str


def _number(key: str, low: int, high: int) -> int:
    return low + zlib.crc32(key.encode()) % (high - low + 1)


@cache
def documents() -> tuple[Document, ...]:
    """The corpus: every subject x each of its kind's aspects, plus a short overview per subject."""
    docs: list[Document] = []
    for subject, kind in _SUBJECTS:
        for aspect in _ASPECTS[kind]:
            key = f"{subject}/{aspect}"
            text = _TEMPLATES[aspect].format(s=subject, n=_number(key + "n", 12, 980), d=_number(key + "d", 2, 48),
                                             y=2015 + _number(key + "y", 0, 10))
            docs.append(Document(f"doc-{len(docs) + 1:04d}", f"{subject}: {aspect}", text))
        docs.append(Document(f"doc-{len(docs) + 1:04d}", f"{subject}: overview",
                             f"{subject} is a {kind} covered in this corpus under "
                             f"{', '.join(_ASPECTS[kind])}."))
    return tuple(docs)


def _terms(text: str) -> list[str]:
    return [t.rstrip(".,") for t in _TOKEN.findall(text.lower()) if t not in _STOP]


@cache
def _index() -> tuple[list[Counter[str]], dict[str, float]]:
    bags = [Counter(_terms(d.title + " " + d.title + " " + d.text)) for d in documents()]
    df: Counter[str] = Counter(t for bag in bags for t in bag)
    n = len(bags)
    return bags, {t: math.log(1 + n / c) for t, c in df.items()}


def search(query: str, k: int = 3) -> list[Document]:
    """The ``k`` best documents for ``query`` by idf-weighted term overlap (ties: corpus order)."""
    bags, idf = _index()
    terms = set(_terms(query))
    scored = [(sum(idf.get(t, 0.0) * min(bag[t], 2) for t in terms), -i) for i, bag in enumerate(bags)]
    best = sorted((s for s in scored if s[0] > 0), reverse=True)[:max(1, min(k, 10))]
    return [documents()[-i] for _, i in best]
