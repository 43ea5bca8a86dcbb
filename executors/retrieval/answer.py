"""One query's answer over a Storage: the lists it asks for (what is seen, what is said), each scored as
evidence in 0-1 and fused into moments (executors.retrieval.fusion)."""
from dataclasses import dataclass, field

import numpy as np

from executors.documents import SCREEN, SegmentDoc
from executors.retrieval.cue_search import spoken_hits
from executors.retrieval.fusion import cue_segments, fuse, visual_evidence
from executors.retrieval.search import Grouping, visual_segments
from executors.storage.interface import Storage

LISTS = ('visual', 'speech', SCREEN)  # the ranked lists a query can ask for, in fusion order


@dataclass(frozen=True)
class Settings:
    """How a query is answered (the Indexer's flow.yml settings)."""

    candidates: int = 64  # nearest keyframes fetched per query; their videos are scored exactly
    grouping: Grouping = Grouping()
    speech_candidates: int = 100  # cue hits fetched per text query
    merge_gap: float = 2.0  # seconds: matching cues of one video this close are one spoken segment
    weights: dict = field(default_factory=lambda: {name: 1.0 for name in LISTS})
    slack: float = 1.0  # seconds: results of one video this close are one moment
    meaning_floor: float = 0.8  # cosine of query and cue text embeddings below which a cue is not found by meaning


def answer(storage: Storage, vector: np.ndarray | None, text: str, *, count: int, lists: tuple[str, ...],
           settings: Settings, meaning: np.ndarray | None = None) -> list[SegmentDoc]:
    """The best `count` moments for a query by `lists` ('visual' needs `vector`, 'speech' needs `text`;
    `meaning`, the text's embedding, also finds cues by meaning).

    One list alone keeps its own order and scores (a keyframe's cosine; a spoken segment's evidence,
    0-1); two that both found something are fused, each as evidence (fusion.fuse).
    """
    found: dict[str, list[SegmentDoc]] = {}
    background = np.empty(0)
    # one pool for every page when lists are fused: a fused list ranked from fewer visual segments merges
    # differently, so paging (top + offset growing) would skip or repeat results
    pool = max(count, settings.speech_candidates) if len(lists) > 1 else count
    if text.strip() and ('speech' in lists or SCREEN in lists):  # what is said and what is shown in writing
        said, shown = cue_lists(storage, text, pool, settings, meaning)
        found.update({name: segments for name, segments in (('speech', said), (SCREEN, shown))
                      if name in lists and segments})
    if 'visual' in lists and vector is not None:
        # the pool's videos are ranked either way; with no other list to fuse, only the first `count` moments show
        visual, background = visual_segments(storage, vector, count=pool, candidates=settings.candidates,
                                             grouping=settings.grouping, keep=pool if found else count)
        found = {'visual': visual, **found} if visual else found
    if len(found) < 2:
        return next(iter(found.values()), [])[:count]
    if 'visual' in found:  # cosines become evidence; the spoken list's scores already are
        evidence = visual_evidence([s.score for s in found['visual']], background)
        found['visual'] = [s.model_copy(update={'score': e}) for s, e in zip(found['visual'], evidence)]
    return fuse(found, count, settings.weights, settings.slack)


def cue_lists(storage: Storage, text: str, count: int, settings: Settings,
              meaning: np.ndarray | None = None) -> tuple[list[SegmentDoc], list[SegmentDoc]]:
    """The segments of the cues matching `text` by words or meaning, scored by their evidence (0-1,
    executors.retrieval.cue_search): those of what is said (subtitles, speech) and those of on-screen text,
    kept apart; each with the keyframe shown at its best cue's time as its thumbnail."""
    hits = spoken_hits(storage, text, meaning, max(settings.speech_candidates, count), settings.meaning_floor)
    lists = []
    for of_screen in (False, True):
        segments = cue_segments([h for h in hits if (h.source == SCREEN) == of_screen], settings.merge_gap,
                                settings.grouping.max_segment, uri=lambda video_id: _path(storage, video_id))
        lists.append([s.model_copy(update={'thumbnail': keyframe_at(storage, s.video_id, s.timestamp),
                                           **({'source': SCREEN, 'sources': [SCREEN]} if of_screen else {})})
                      for s in segments[:count]])
    return lists[0], lists[1]


def keyframe_at(storage: Storage, video_id: str, seconds: float) -> str:
    """The thumbnail of the keyframe on screen at `seconds` (the last one at or before it; else the first)."""
    times = storage.keyframe_times(video_id)
    if not len(times):
        return ''
    return storage.thumbnail(video_id, max(int(np.searchsorted(times, seconds + 1e-6, side='right')) - 1, 0))


def _path(storage: Storage, video_id: str) -> str:
    record = storage.video(video_id)
    return record.path if record else ''
