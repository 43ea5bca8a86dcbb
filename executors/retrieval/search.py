"""Search over any Storage: nearest keyframes -> candidate videos -> exact scores -> segments.

Every video's segments for a query are computed the same way whatever the number of results
asked (SEGMENTS_PER_VIDEO of them), so a video's best moment never depends on `top` or paging.
"""
from dataclasses import dataclass

import numpy as np

from executors.documents import SegmentDoc
from executors.retrieval.segments import Segment, group_segments
from executors.storage.interface import Storage, VideoRecord
from executors.vectors import best_first, float32_scores

SEGMENTS_PER_VIDEO = 8  # segments grown per candidate video; results are drawn from these


@dataclass(frozen=True)
class Grouping:
    """How keyframe scores become segments (see executors.retrieval.segments.group_segments)."""

    margin: float = 0.02
    max_segment: float = 30.0
    snap: float = 2.0


def search_segments(storage: Storage, query: np.ndarray, *, count: int, candidates: int,
                    grouping: Grouping) -> list[SegmentDoc]:
    """The best `count` segments: the query's `candidates` nearest keyframes name candidate videos,
    the first `count` of them (nearest first) are scored exactly over every keyframe.

    The best `count` segments lie in at most `count` videos, though not always these: a shortcut
    that keeps the exact scoring to a few videos.
    """
    return visual_segments(storage, query, count=count, candidates=candidates, grouping=grouping)[0]


def rank_segments(storage: Storage, video_ids: list[str], query: np.ndarray, *, count: int,
                  grouping: Grouping) -> list[SegmentDoc]:
    """The best `count` segments of these videos, each scored exactly over every keyframe.

    A segment's score is its peak keyframe's, so a video whose best keyframe scores below the
    `count`-th best segment found so far has nothing to add: videos are grouped best first and
    the rest skipped, with the same result as grouping them all.
    """
    return ranked_segments(storage, video_ids, query, count=count, grouping=grouping)[0]


def visual_segments(storage: Storage, query: np.ndarray, *, count: int, candidates: int, grouping: Grouping,
                    keep: int | None = None) -> tuple[list[SegmentDoc], np.ndarray]:
    """search_segments' segments, and the background they stand out from: the cosines of every keyframe
    of the videos scored (executors.retrieval.fusion.visual_evidence). `keep` (at most `count`): only the
    first `keep` of those segments, the same ones, without building the rest."""
    neighbours = storage.nearest(query, max(candidates, count))
    return ranked_segments(storage, list(dict.fromkeys(neighbours.video_ids))[:count], query,
                           count=min(count, keep or count), grouping=grouping)


def ranked_segments(storage: Storage, video_ids: list[str], query: np.ndarray, *, count: int,
                    grouping: Grouping) -> tuple[list[SegmentDoc], np.ndarray]:
    """rank_segments' segments, and the cosines of all the keyframes of these videos."""
    scored = []
    for video in filter(None, map(storage.video, video_ids)):
        times, scores = keyframe_scores(storage, video, query)
        scored.append((float(scores.max()) if len(scores) else -1.0, video, times, scores))
    background = np.concatenate([item[3] for item in scored]) if scored else np.empty(0, np.float32)
    scored.sort(key=lambda item: -item[0])
    # each video's best keyframe peaks a segment, so the count-th best of these is a floor no result is below
    floor = scored[count - 1][0] if len(scored) >= count else float('-inf')
    found = []
    for best, video, times, scores in scored:
        if len(found) >= count:
            floor = max(floor, found[count - 1][1].score)
        if best < floor:
            break
        found += [(video, segment) for segment in _grouped(storage, video, times, scores, grouping, floor)]
        found.sort(key=lambda item: (-item[1].score, item[0].id, item[1].start))
    return [segment_doc(storage, video, segment) for video, segment in found[:count]], background


def search_videos(storage: Storage, query: np.ndarray, *, count: int, grouping: Grouping) -> list[SegmentDoc]:
    """Videos ranked by the cosine of their mean keyframe (CLIP4Clip's meanP), each shown at its
    best segment; `score` is the video's score."""
    ids, means = storage.video_means()
    if not ids:
        return []
    scores = float32_scores(means, query)
    order = [ids[i] for i in best_first(scores, count)]
    score_of = dict(zip(ids, scores.tolist()))
    matches = []
    for video in filter(None, map(storage.video, order)):
        best = video_segments(storage, video, query, grouping)[0]
        matches.append(segment_doc(storage, video, best, score=score_of[video.id]))
    return matches


def video_segments(storage: Storage, video: VideoRecord, query: np.ndarray, grouping: Grouping) -> list[Segment]:
    """A video's best SEGMENTS_PER_VIDEO segments, scored exactly over all its keyframes."""
    return _grouped(storage, video, *keyframe_scores(storage, video, query), grouping)


def keyframe_scores(storage: Storage, video: VideoRecord, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A video's keyframe times and cosines with the query (finite, within -1..1)."""
    timestamps, scores = storage.keyframe_scores(video.id, query)
    if len(scores) and -1.0 <= scores.min() and scores.max() <= 1.0:  # false for NaN too
        return timestamps, scores  # the usual case, without a copy
    return timestamps, np.clip(np.nan_to_num(scores, nan=-1.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


def _grouped(storage: Storage, video: VideoRecord, timestamps: np.ndarray, scores: np.ndarray,
             grouping: Grouping, floor: float = float('-inf')) -> list[Segment]:
    return group_segments(scores, timestamps, video.duration, margin=grouping.margin,
                          max_segment=grouping.max_segment, limit=SEGMENTS_PER_VIDEO,
                          shots=storage.shots(video.id), snap=grouping.snap, floor=floor)


def segment_doc(storage: Storage, video: VideoRecord, segment: Segment, score: float | None = None) -> SegmentDoc:
    """A segment as a result: its video, times, peak keyframe's time and thumbnail, and score."""
    return SegmentDoc(video_id=video.id, uri=video.path, start=segment.start, end=segment.end,
                      timestamp=segment.peak_time, score=float(segment.score if score is None else score),
                      thumbnail=storage.thumbnail(video.id, segment.peak), source='visual', sources=['visual'])
