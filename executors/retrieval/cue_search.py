"""Search over what is said, by one set of rules for every backend: the backend fetches candidate cues,
`search` here ranks them.

Words (bm25 with coverage): a query's terms (executors/retrieval/cue_text.py: normalised words, stop
words left out when there are others) fetch every cue holding one of their keys (the rarest keys first,
at most `candidates` cues). Each cue, and each window of up to WINDOW adjacent cues of one video (a
sentence recognised as two cues), is scored by how much of the query it covers: a term found in the
exact form counts 1, by its stem only STEM_MATCH (so an exact "gardener" beats "garden"), a compound
written apart or together ("light house" / lighthouse) counts as found; coverage is the idf-weighted
share of the query found, and a result needs at least MIN_COVERAGE of it. Results are ordered by
coverage, then by bm25 (k1 1.2, b 0.75; idf over the whole library, length against the candidates'
mean length), then video and time. A window is kept only where it covers more than each of its cues.

Meaning: each cue's text embedding (the query's text tower, stored with the cue) against the query's
embedding; `merge_meaning` folds those cosines into the same list (a cue found by words and by meaning
scores the higher of the two).
"""
import dataclasses
import functools
import math
import statistics
from collections import Counter
from typing import Iterable, Protocol

from executors.retrieval.cue_text import CJK_RUN, Term, keys_of, query_terms, stem, words

STEM_MATCH = 0.8  # a term found only by its stem counts this much of an exact one
MIN_COVERAGE = 0.25  # share of the query (idf-weighted) a spoken result must hold
WINDOW = 3  # adjacent cues of one video scored together, at most
WINDOW_GAP = 2.0  # seconds: cues further apart are never one window
CANDIDATES = 1000  # cues fetched per query, at most (rarest keys first)
K1, B = 1.2, 0.75
MEANING_FLOOR = 0.8  # cosine (query text vs cue text embedding) below which meaning is no evidence
MEANING_BASELINE = 10  # neighbours from which their median cosine is the floor
MEANING_WEIGHT = 0.9  # a pure meaning match at cosine 1 ranks just below a cue holding every word


@dataclasses.dataclass(frozen=True)
class CueRow:
    """A stored cue as a backend fetches it; `cue` is its place among its video's cues (0, 1, ...)."""

    video_id: str
    cue: int
    start: float
    end: float
    text: str
    source: str
    language: str


@dataclasses.dataclass(frozen=True)
class CueHit:
    """A cue, or window of adjacent cues, that matches a query. `score` (higher is better, 0-1): the
    share of the query it holds (`coverage`) or its meaning strength, whichever is higher."""

    video_id: str
    start: float
    end: float
    text: str
    source: str
    language: str
    score: float
    coverage: float = 0.0
    bm25: float = 0.0
    meaning: float = 0.0


class CueSource(Protocol):
    """What a backend answers for `search` (executors/storage/*: each backend's search_cues)."""

    def cue_total(self) -> int:
        """The number of stored cues."""

    def key_frequencies(self, keys: list[str]) -> dict[str, int]:
        """How many stored cues hold each key."""

    def cues_with(self, key: str, limit: int) -> list[CueRow]:
        """At most `limit` stored cues holding `key` (video, then time order)."""


@dataclasses.dataclass(frozen=True)
class _Text:
    """What scoring reads of a cue's text: its words, adjacent words joined, stems, key counts, length."""

    words: frozenset[str]
    joined: frozenset[str]
    stems: frozenset[str]
    counts: Counter
    length: int


@dataclasses.dataclass(frozen=True)
class _Cue:
    row: CueRow
    text: _Text


def search(source: CueSource, text: str, limit: int, candidates: int = CANDIDATES) -> list[CueHit]:
    """The `limit` best cues or windows of cues for `text`, by the rules in the module docstring."""
    terms = query_terms(text)
    if not terms or limit < 1:
        return []
    fetch = _fetch_keys(terms)
    frequency = source.key_frequencies(fetch)
    rows: dict[tuple[str, int], CueRow] = {}
    for key in sorted(fetch, key=lambda k: (frequency.get(k, 0), k)):
        if frequency.get(key, 0) and len(rows) < candidates:
            for row in source.cues_with(key, candidates - len(rows)):
                rows.setdefault((row.video_id, row.cue), row)
    if not rows:
        return []
    return rank(terms, list(rows.values()), frequency, max(source.cue_total(), len(rows)))[:limit]


def _fetch_keys(terms: list[Term]) -> list[str]:
    found = []
    for i, term in enumerate(terms):
        found += term.parts or [term.key]
        if _joinable(terms, i):
            found.append(stem(term.word + terms[i + 1].word))
    return list(dict.fromkeys(found))


def _joinable(terms: list[Term], i: int) -> bool:
    return i + 1 < len(terms) and terms[i].word.isalpha() and terms[i + 1].word.isalpha() \
        and not terms[i].cjk and not terms[i + 1].cjk


def rank(terms: list[Term], rows: list[CueRow], frequency: dict[str, int], total: int) -> list[CueHit]:
    """The shared scoring: every matching cue or window of `rows`, best first, windows not overlapping."""
    cues = [_analysed(row) for row in rows]
    mean_length = sum(c.text.length for c in cues) / len(cues) or 1.0
    idf = [math.log(1 + (total - df + 0.5) / (df + 0.5)) for df in (_term_frequency(t, frequency) for t in terms)]
    query = _Query.of(terms, idf)
    scored = []
    by_video: dict[str, list[_Cue]] = {}
    for cue in cues:
        by_video.setdefault(cue.row.video_id, []).append(cue)
    for video_cues in by_video.values():
        video_cues.sort(key=lambda c: c.row.cue)
        single = [_score(query, [c], mean_length) for c in video_cues]
        for first in range(len(video_cues)):
            if single[first][0] >= MIN_COVERAGE - 1e-9:
                scored.append((*single[first], video_cues[first:first + 1]))
            shorter = single[first][0]
            for last in range(first + 1, min(first + WINDOW, len(video_cues))):
                if (video_cues[last].row.cue != video_cues[last - 1].row.cue + 1
                        or video_cues[last].row.start - video_cues[last - 1].row.end > WINDOW_GAP):
                    break
                window = video_cues[first:last + 1]
                coverage, bm25 = _score(query, window, mean_length)
                if coverage >= MIN_COVERAGE - 1e-9 and coverage > shorter + 1e-9 and \
                        coverage > max(s[0] for s in single[first:last + 1]) + 1e-9:
                    scored.append((coverage, bm25, window))
                shorter = max(shorter, coverage)
    scored.sort(key=lambda s: (-s[0], -s[1], s[2][0].row.video_id, s[2][0].row.start, len(s[2])))
    taken: set[tuple[str, int]] = set()
    hits = []
    for coverage, bm25, window in scored:
        ids = {(c.row.video_id, c.row.cue) for c in window}
        if ids & taken:
            continue
        taken |= ids
        hits.append(_hit(window, coverage, bm25))
    return hits


def _term_frequency(term: Term, frequency: dict[str, int]) -> int:
    return min(frequency.get(k, 0) for k in (term.parts or (term.key,)))


def _analysed(row: CueRow) -> _Cue:
    return _Cue(row, _analysis(row.text))


@functools.lru_cache(maxsize=20_000)  # a long-lived process meets the same cues again
def _analysis(text: str) -> _Text:
    tokens = words(text)
    latin = [t for t in tokens if not CJK_RUN.fullmatch(t)]
    joined = frozenset(a + b for a, b in zip(latin, latin[1:]) if a.isalpha() and b.isalpha())
    counts = Counter(keys_of(tokens))
    return _Text(frozenset(tokens), joined, frozenset({stem(t) for t in latin} | {stem(j) for j in joined}), counts,
                 sum(counts.values()))


@dataclasses.dataclass(frozen=True)
class _Query:
    """What scoring reads of a query, worked out once per search: its terms, their idf, and for each pair of
    adjacent Latin words the compound they make (written together, and its stem)."""

    terms: list[Term]
    idf: list[float]
    compounds: list[tuple[int, str, str]]  # (i, terms[i].word + terms[i + 1].word, its stem)
    keys: list[tuple[str, ...]]  # per term, the keys whose counts give its term frequency

    @classmethod
    def of(cls, terms: list[Term], idf: list[float]) -> '_Query':
        compounds = [(i, terms[i].word + terms[i + 1].word, stem(terms[i].word + terms[i + 1].word))
                     for i in range(len(terms)) if _joinable(terms, i)]
        return cls(terms, idf, compounds, [term.parts or (term.key,) for term in terms])


def _score(query: _Query, window: list[_Cue], mean_length: float) -> tuple[float, float]:
    """(coverage, bm25) of a window of cues for the query's terms."""
    if len(window) == 1:
        text = window[0].text
        found_words, joined, stems, counts, length = text.words, text.joined, text.stems, text.counts, text.length
    else:
        found_words = frozenset().union(*(c.text.words for c in window))
        joined = frozenset().union(*(c.text.joined for c in window))
        stems = frozenset().union(*(c.text.stems for c in window))
        counts = sum((c.text.counts for c in window), Counter())
        length = sum(c.text.length for c in window)
    match = [0.0] * len(query.terms)
    for i, term in enumerate(query.terms):
        if term.parts:  # CJK
            match[i] = 1.0 if all(counts[p] for p in term.parts) else 0.0
        elif term.word in found_words or term.word in joined:
            match[i] = 1.0
        elif term.key in stems:
            match[i] = STEM_MATCH
    for i, together, together_stem in query.compounds:
        if min(match[i], match[i + 1]) < 1.0:
            strength = 1.0 if together in found_words or together in joined else \
                STEM_MATCH if together_stem in stems else 0.0
            match[i], match[i + 1] = max(match[i], strength), max(match[i + 1], strength)
    weight = sum(query.idf) or 1.0
    coverage = sum(m * w for m, w in zip(match, query.idf)) / weight
    bm25 = 0.0
    for keys, m, w in zip(query.keys, match, query.idf):
        if m:
            tf = max(1, min(counts[k] for k in keys))
            bm25 += m * w * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / mean_length))
    return coverage, bm25


def _hit(window: list[_Cue], coverage: float, bm25: float) -> CueHit:
    first = window[0].row
    texts = list(dict.fromkeys(c.row.text for c in window))
    return CueHit(video_id=first.video_id, start=first.start, end=max(c.row.end for c in window),
                  text=' '.join(texts), source=first.source, language=first.language, score=round(coverage, 6),
                  coverage=round(coverage, 6), bm25=bm25)


def spoken_hits(storage, text: str, vector, limit: int, meaning_floor: float = MEANING_FLOOR) -> list[CueHit]:
    """What a Storage finds said for a query: by words (`text`) and, given the query's unit text embedding
    `vector`, by meaning; one list, best first (the 'speech' list of the fusion)."""
    by_words = storage.search_cues(text, limit)
    if vector is None or meaning_floor >= 1:
        return by_words
    return merge_meaning(by_words, meaning_hits(storage.nearest_cues(vector, limit), meaning_floor), limit)


def meaning_hits(found: Iterable[tuple[CueRow, float]], floor: float = MEANING_FLOOR) -> list[CueHit]:
    """Cues found by meaning ((cue, cosine) pairs, nearest first) as hits scored (cosine - floor) / (1 - floor),
    best first. With MEANING_BASELINE or more neighbours the floor rises to their median cosine: a text tower
    that finds every sentence somewhat alike (CLIP's does) must single a cue out to count."""
    found = list(found)
    if len(found) >= MEANING_BASELINE:
        floor = max(floor, statistics.median(cosine for _, cosine in found))
    hits = []
    for row, cosine in found:
        strength = (float(cosine) - floor) / (1.0 - floor)
        if strength > 0:
            hits.append(CueHit(video_id=row.video_id, start=row.start, end=row.end, text=row.text, source=row.source,
                               language=row.language, score=round(MEANING_WEIGHT * min(strength, 1.0), 6),
                               meaning=round(min(strength, 1.0), 6)))
    return sorted(hits, key=_order)


def merge_meaning(by_words: list[CueHit], by_meaning: list[CueHit], limit: int) -> list[CueHit]:
    """One spoken list: word hits and meaning hits; a meaning hit inside a word hit's span raises its score."""
    merged = list(by_words)
    for hit in by_meaning:
        inside = next((i for i, w in enumerate(merged) if w.video_id == hit.video_id
                       and w.start <= hit.start and hit.end <= w.end), None)
        if inside is None:
            merged.append(hit)
        else:
            word = merged[inside]
            merged[inside] = dataclasses.replace(word, meaning=max(word.meaning, hit.meaning),
                                                 score=max(word.score, hit.score))
    return sorted(merged, key=_order)[:limit]


def _order(hit: CueHit) -> tuple:
    return -hit.score, -hit.bm25, hit.video_id, hit.start
