"""Search over any Storage: nearest keyframes -> candidate videos -> exact scores -> segments.

Every video's segments for a query are computed the same way whatever the number of results
asked (SEGMENTS_PER_VIDEO of them), so a video's best moment never depends on `top` or paging.
"""
from dataclasses import dataclass

import numpy as np

from executors.documents import SegmentDoc
from executors.segments import Segment, group_segments
from executors.storage import Storage, VideoRecord

SEGMENTS_PER_VIDEO = 8  # segments grown per candidate video; results are drawn from these


@dataclass(frozen=True)
class Grouping:
    """How keyframe scores become segments (see executors.segments.group_segments)."""

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
    neighbours = storage.nearest(query, max(candidates, count))
    video_ids = list(dict.fromkeys(neighbours.video_ids))[:count]
    found = []
    for video in filter(None, map(storage.video, video_ids)):
        found += [(video, moment) for moment in video_segments(storage, video, query, grouping)]
    found.sort(key=lambda item: (-item[1].segment.score, item[0].id, item[1].segment.start))
    return [segment_doc(video, moment) for video, moment in found[:count]]


def search_videos(storage: Storage, query: np.ndarray, *, count: int, grouping: Grouping) -> list[SegmentDoc]:
    """Videos ranked by the cosine of their mean keyframe (CLIP4Clip's meanP), each shown at its
    best segment; `score` is the video's score."""
    ids, means = storage.video_means()
    if not ids:
        return []
    scores = means @ query
    order = [ids[i] for i in np.argsort(-scores, kind='stable')[:count]]
    score_of = dict(zip(ids, scores.tolist()))
    matches = []
    for video in filter(None, map(storage.video, order)):
        best = video_segments(storage, video, query, grouping)[0]
        matches.append(segment_doc(video, best, score=score_of[video.id]))
    return matches


@dataclass(frozen=True)
class Moment:
    """A segment with its peak keyframe's time and thumbnail."""

    segment: Segment
    timestamp: float
    thumbnail: str


def video_segments(storage: Storage, video: VideoRecord, query: np.ndarray, grouping: Grouping) -> list[Moment]:
    """A video's best segments, scored exactly over all its keyframes."""
    frames = storage.frames(video.id)
    scores = np.nan_to_num(frames.vectors @ query, nan=-1.0, posinf=1.0, neginf=-1.0).clip(-1.0, 1.0)
    segments = group_segments(scores, frames.timestamps, video.duration, margin=grouping.margin,
                              max_segment=grouping.max_segment, limit=SEGMENTS_PER_VIDEO,
                              shots=storage.shots(video.id), snap=grouping.snap)
    return [Moment(s, float(frames.timestamps[s.peak]), frames.thumbnails[s.peak] if frames.thumbnails else '')
            for s in segments]


def segment_doc(video: VideoRecord, moment: Moment, score: float | None = None) -> SegmentDoc:
    segment = moment.segment
    return SegmentDoc(video_id=video.id, uri=video.path, start=segment.start, end=segment.end,
                      timestamp=moment.timestamp, score=float(segment.score if score is None else score),
                      thumbnail=moment.thumbnail, source='visual')
