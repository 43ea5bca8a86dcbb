"""Ranking what is seen and what is said together: each list's scores become evidence in 0-1 by what
they mean, and the results of one moment found by several lists become one result.

Rank-only fusion (reciprocal rank fusion) gives the first of every list the same score, so a cue
holding every word of the query tied with a middling keyframe, and the tie went by video id. Here
each list says how sure it is, in 0-1:
- a keyframe's cosine by how far it stands above the query's background, the cosines of all the
  keyframes scored for the query: its robust z-score ((cosine - median) / robust spread), less what
  chance alone gives the best of that many background keyframes (sqrt(2 ln n)), over CERTAIN_MARGIN;
  so a visual match no better than the luck of a large library is no evidence;
- a spoken segment by the fraction of the query's words its cue holds, times 0.9-1.0 by its bm25
  relative to the list's best (so coverage decides, bm25 orders equal coverage).
A result's fused score combines the lists that found it as independent evidence (noisy-OR:
1 - the product of 1 - weight x evidence), so a cue holding every query word (1.0) is never outscored,
and agreeing lists add up without passing 1. Results of
one video that overlap (within `slack` seconds) are one moment: it keeps the span, keyframe and
thumbnail of its strongest member (never the union of their spans), the words of its best member
that has words, and `sources`, the names of the lists that found it (`source`: that name, or 'both').
"""
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from executors.documents import SegmentDoc

CERTAIN_MARGIN = 3.0  # robust deviations above chance's best at which a keyframe is full visual evidence
MIN_SPREAD = 0.01  # cosine: the background's spread is at least this (a library of near-identical frames)


class Hit(Protocol):
    """What cue_segments reads from a cue hit (executors.retrieval.cue_search.CueHit has it)."""

    video_id: str
    start: float
    end: float
    text: str
    score: float  # bm25, higher is better
    coverage: float  # the fraction of the query's words the cue holds, 0-1


def visual_evidence(scores: Iterable[float], background: np.ndarray) -> list[float]:
    """Each cosine as evidence in 0-1: its robust z-score over the `background` cosines (the keyframes
    scored for the query) less chance's best z-score among that many, over CERTAIN_MARGIN, clipped."""
    background = np.asarray(background, dtype=np.float64)
    if not len(background):
        return [0.0 for _ in scores]
    median = float(np.median(background))
    spread = max(1.4826 * float(np.median(np.abs(background - median))), MIN_SPREAD)
    chance = float(np.sqrt(2 * np.log(len(background))))  # about the largest z-score of n draws of noise
    return [float(np.clip(((s - median) / spread - chance) / CERTAIN_MARGIN, 0.0, 1.0)) for s in scores]


def cue_segments(hits: Iterable[Hit], merge_gap: float = 2.0, max_segment: float = 30.0,
                 uri: Callable[[str], str] | None = None, scores: Sequence[float] | None = None) -> list[SegmentDoc]:
    """Spoken segments from ranked cue hits: hits of one video less than `merge_gap` seconds apart merge
    (up to `max_segment` seconds long), keeping the best hit's score; best first.

    A segment spans its cues (a single cue longer than `max_segment` is cut to it), `timestamp` is its
    best cue's start, `text` its cues' words in time order; `scores` (one per hit)
    replace the hits' own; `uri(video_id)` fills `uri` when given.
    """
    hits = list(hits)
    scored = [(hit, hit.score if scores is None else float(score))
              for hit, score in zip(hits, scores if scores is not None else hits)]
    by_video: dict[str, list[tuple[Hit, float]]] = {}
    for hit, score in scored:
        by_video.setdefault(hit.video_id, []).append((hit, score))
    segments = []
    for video_id, video_hits in by_video.items():
        group: list[tuple[Hit, float]] = []
        for hit, score in sorted(video_hits, key=lambda item: (item[0].start, item[0].end)):
            if group and (hit.start - max(h.end for h, _ in group) > merge_gap
                          or max(hit.end, *(h.end for h, _ in group)) - group[0][0].start > max_segment):
                segments.append(_spoken(video_id, group, uri, max_segment))
                group = []
            group.append((hit, score))
        segments.append(_spoken(video_id, group, uri, max_segment))
    return sorted(segments, key=_order)


def _spoken(video_id: str, group: list, uri: Callable[[str], str] | None, max_segment: float) -> SegmentDoc:
    best, score = max(group, key=lambda item: (item[1], -item[0].start))
    texts = list(dict.fromkeys(h.text for h, _ in group))  # a cue repeated in two languages' files shows once
    start = group[0][0].start
    return SegmentDoc(video_id=video_id, uri=uri(video_id) if uri else '', start=start,
                      end=min(max(h.end for h, _ in group), start + max_segment), timestamp=best.start, score=score,
                      source='speech', sources=['speech'], text=' '.join(texts))


@dataclass
class _Moment:
    lead: SegmentDoc  # the strongest member: its span, keyframe and thumbnail are the moment's
    found: dict[str, tuple[float, SegmentDoc]] = field(default_factory=dict)  # list name -> (weighted evidence, segment)


def fuse(lists: Mapping[str, Sequence[SegmentDoc]], top: int, weights: Mapping[str, float] | None = None,
         slack: float = 1.0) -> list[SegmentDoc]:
    """The `top` best moments of named ranked lists whose scores are evidence in 0-1, as new SegmentDocs.

    Segments are taken strongest first (weight x evidence); each joins the first moment of its video
    that it overlaps within `slack` seconds and that its list has not joined yet, else starts one.
    A moment's `score` is its members' weighted evidence combined by noisy-OR; `sources` names its lists in the
    order of `lists`; `source` is that name, or 'both' when several agree. Ties: more sources first,
    then video id and start time, so the same inputs always give the same order. A weight missing
    from `weights` is 1.
    """
    weights = dict(weights or {})
    if any(w < 0 for w in weights.values()) or slack < 0:
        raise ValueError(f'fusion needs weights >= 0 and slack >= 0, not {weights}, {slack}')
    names = list(lists)
    taken = sorted(((weights.get(name, 1.0) * float(segment.score), names.index(name), segment)
                    for name, segments in lists.items() for segment in segments),
                   key=lambda item: (-item[0], item[1], item[2].video_id, item[2].start))
    moments: dict[str, list[_Moment]] = {}
    for weighted, index, segment in taken:
        name = names[index]
        moment = next((m for m in moments.get(segment.video_id, ()) if name not in m.found
                       and m.lead.start - slack < segment.end and segment.start - slack < m.lead.end), None)
        if moment is None:
            moment = _Moment(segment)
            moments.setdefault(segment.video_id, []).append(moment)
        moment.found[name] = (weighted, segment)
    scored = [(_fused(m), m) for video in moments.values() for m in video]
    scored.sort(key=lambda item: (-item[0], -len(item[1].found), item[1].lead.video_id, item[1].lead.start,
                                  item[1].lead.end))
    return [_result(m, names, score) for score, m in scored[:max(0, top)]]  # documents only for those shown


def _fused(moment: _Moment) -> float:
    """The moment's members' weighted evidence combined by noisy-OR."""
    return float(1.0 - np.prod([1.0 - min(weighted, 1.0) for weighted, _ in moment.found.values()]))


def _result(moment: _Moment, names: list[str], score: float) -> SegmentDoc:
    sources = [name for name in names if name in moment.found]
    said = [segment for _, segment in sorted(moment.found.values(), key=lambda item: -item[0]) if segment.text]
    return _copy(moment.lead, score=score,
                 source=sources[0] if len(sources) == 1 else 'both', sources=sources,
                 text=moment.lead.text or (said[0].text if said else None),
                 thumbnail=moment.lead.thumbnail or next((s.thumbnail for _, s in moment.found.values() if s.thumbnail), ''))


def _copy(segment: SegmentDoc, **changes) -> SegmentDoc:
    return SegmentDoc(**{**segment.model_dump(exclude={'id'}), **changes})


def _order(segment: SegmentDoc) -> tuple:
    return -segment.score, segment.video_id, segment.start, segment.end, segment.source
