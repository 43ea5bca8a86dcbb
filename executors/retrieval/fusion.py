"""Ranking what is seen and what is said together: cue hits become segments, then reciprocal rank fusion.

Reciprocal rank fusion (Cormack et al., 2009) scores a result `weight / (k + rank)` in each list
it appears in (rank from 1) and sums: it needs no calibration between a CLIP cosine and a bm25
score, only their orders. A visual segment and a spoken segment of the same video whose times
overlap (within `slack` seconds) are one moment: they become one result with source 'both',
the sum of both scores, the union of both spans, the keyframe and thumbnail of the visual one
and the words of the spoken one.
"""
from typing import Callable, Iterable, Protocol

from executors.documents import SCREEN, SegmentDoc


class Hit(Protocol):
    """What cue_segments reads from a cue hit (executors.retrieval.cue_search.CueHit has it)."""

    video_id: str
    start: float
    end: float
    text: str
    score: float


def cue_segments(hits: Iterable[Hit], merge_gap: float = 2.0, max_segment: float = 30.0,
                 uri: Callable[[str], str] | None = None, source: str = 'speech') -> list[SegmentDoc]:
    """Spoken segments from ranked cue hits: hits of one video less than `merge_gap` seconds apart merge
    (up to `max_segment` seconds long), keeping the best hit's score; best first.

    A segment spans its cues, `timestamp` is its best cue's start, `text` its cues' words in time
    order; `uri(video_id)` fills `uri` when given; `source` names their list ('speech' or 'screen').
    """
    by_video: dict[str, list[Hit]] = {}
    for hit in hits:
        by_video.setdefault(hit.video_id, []).append(hit)
    segments = []
    for video_id, video_hits in by_video.items():
        group: list[Hit] = []
        for hit in sorted(video_hits, key=lambda h: (h.start, h.end)):
            if group and (hit.start - max(h.end for h in group) > merge_gap
                          or max(hit.end, *(h.end for h in group)) - group[0].start > max_segment):
                segments.append(_spoken(video_id, group, uri, source))
                group = []
            group.append(hit)
        segments.append(_spoken(video_id, group, uri, source))
    return sorted(segments, key=_order)


def _spoken(video_id: str, group: list, uri: Callable[[str], str] | None, source: str) -> SegmentDoc:
    best = max(group, key=lambda h: (h.score, -h.start))
    texts = list(dict.fromkeys(h.text for h in group))  # a cue repeated in two languages' files shows once
    return SegmentDoc(video_id=video_id, uri=uri(video_id) if uri else '', start=group[0].start,
                      end=max(h.end for h in group), timestamp=best.start, score=best.score,
                      source=source, text=' '.join(texts))


def fuse(visual: list[SegmentDoc], spoken: list[SegmentDoc], top: int, k: float = 60.0,
         visual_weight: float = 1.0, speech_weight: float = 1.0, slack: float = 1.0,
         screen: list[SegmentDoc] = (), screen_weight: float = 1.0) -> list[SegmentDoc]:
    """The `top` results of reciprocal rank fusion of two ranked lists (best first), as new SegmentDocs,
    and of a third, `screen` (on-screen text segments), whose results stand as their own (source 'screen').

    Each spoken segment merges with the best-ranked visual segment of its video that overlaps it
    within `slack` seconds and has not merged yet. `score` is the fused score; ties are ordered
    by video id, then start time, so the same inputs always give the same order.
    """
    if k <= 0 or visual_weight < 0 or speech_weight < 0:
        raise ValueError(f'fusion needs k > 0 and weights >= 0, not k={k}, {visual_weight}, {speech_weight}')
    results = [_copy(s, score=visual_weight / (k + rank)) for rank, s in enumerate(visual, 1)]
    results += [_copy(s, score=screen_weight / (k + rank), source=SCREEN) for rank, s in enumerate(screen, 1)]
    by_video: dict[str, list[int]] = {}
    for i, segment in enumerate(visual):
        by_video.setdefault(segment.video_id, []).append(i)
    merged: set[int] = set()
    for rank, said in enumerate(spoken, 1):
        score = speech_weight / (k + rank)
        partner = next((i for i in by_video.get(said.video_id, ()) if i not in merged
                        and visual[i].start - slack < said.end and said.start - slack < visual[i].end), None)
        if partner is None:
            results.append(_copy(said, score=score, source='speech'))
            continue
        merged.add(partner)
        seen = results[partner]
        results[partner] = _copy(seen, score=seen.score + score, source='both', text=said.text,
                                 start=min(seen.start, said.start), end=max(seen.end, said.end))
    return sorted(results, key=_order)[:max(0, top)]


def _copy(segment: SegmentDoc, **changes) -> SegmentDoc:
    return SegmentDoc(**{**segment.model_dump(exclude={'id'}), **changes})


def _order(segment: SegmentDoc) -> tuple:
    return -segment.score, segment.video_id, segment.start, segment.end, segment.source
