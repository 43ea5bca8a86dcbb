"""Shared footage: where a clip comes from, and which stored videos are the same footage.

Both start from the ANN index (a few keyframes' nearest neighbours name the candidate videos, never
all pairs) and decide with the time alignment of executors/retrieval/alignment.py.
"""
from typing import Callable, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from executors.documents import DocList, DuplicateDoc, QueryDoc, SegmentDoc
from executors.retrieval.alignment import MIN_SIMILARITY, align, keyframe_interval
from executors.storage.interface import Frames, Storage

__all__ = ['Located', 'Shared', 'locate_clip', 'find_duplicates', 'clip_sources', 'duplicate_groups']

PROBES = 16  # a clip's keyframes that look up candidate videos
NEIGHBOURS = 32  # nearest keyframes fetched per probe
BATCH = 16384  # probes searched in one index call (IVF scores each probed list against all its probes at once)
INTRO_SHARE = 0.25  # a shared range under this share of both videos, at both starts (or ends), is an intro (outro)


class Located(NamedTuple):
    """A stored video holding the clip: the clip spans start-end seconds of it."""

    video_id: str
    start: float
    end: float
    score: float


class Shared(NamedTuple):
    """Videos that share footage: each (video_id, start, end) of the shared range; `part` says whether
    that range is 'footage', or only an 'intro' or 'outro'."""

    videos: list[tuple[str, float, float]]
    score: float
    part: str


def locate_clip(storage: Storage, times: np.ndarray, vectors: np.ndarray, duration: float,
                count: int) -> list[Located]:
    """The stored videos the clip (keyframe times in seconds, unit vectors) best aligns with, best first."""
    found = []
    for video_id in _candidates(storage, vectors, exclude=''):
        frames = storage.frames(video_id)
        alignment = align(times, vectors, frames.timestamps, frames.vectors)
        if alignment is None:
            continue
        length = storage.video(video_id).duration or float(frames.timestamps[-1])
        start = min(max(alignment.offset, 0.0), length)
        found.append((not alignment.distinct, Located(video_id, start, min(max(alignment.offset + duration, start), length),
                                                      alignment.score)))
    # a video that matches the clip only by content without movement (where in it, nothing says) comes after
    return [f for _, f in sorted(found, key=lambda f: (f[0], -f[1].score, f[1].video_id))][:count]


def find_duplicates(storage: Storage, threshold: float, probes: int = 3) -> list[Shared]:
    """Groups of stored videos that share footage scoring at least `threshold` (the mean cosine of the
    aligned keyframes), with the shared range in each; best groups first."""
    # thousands of small matrix products (a list against its probes, a pair's keyframes): a BLAS thread pool
    # only waits on itself for them, badly so on busy cores (1k videos: 13 s with 2 threads, 3 s with one)
    with threadpool_limits(1, user_api='blas'):
        return _find_duplicates(storage, threshold, probes)


def _find_duplicates(storage: Storage, threshold: float, probes: int) -> list[Shared]:
    durations = {v.id: v.duration for v in storage.videos()}
    owners, queries = [], []
    for video_id in durations:  # only the probes are kept: a library's keyframes may not fit in memory
        vectors = storage.frames(video_id).vectors
        rows = _probe_rows(len(vectors), probes)
        owners += [video_id] * len(rows)
        queries.append(vectors[rows])
    pairs = set()
    if queries:
        queries = np.concatenate(queries)
        for first in range(0, len(queries), BATCH):  # one index call per batch: far cheaper than one per query
            for owner, near in zip(owners[first:first + BATCH], storage.nearest_many(queries[first:first + BATCH],
                                                                                      NEIGHBOURS, near=True)):
                pairs |= {(owner, v) if owner < v else (v, owner)
                          for v, score in zip(near.video_ids, near.scores) if v != owner and score >= MIN_SIMILARITY}
    frames = _FramesCache(storage)
    links = [link for pair in sorted(pairs) if (link := _shared(frames, *pair, durations, threshold))]
    return sorted(_groups(links), key=lambda g: (-g.score, g.videos))


class _FramesCache:
    """Each video's stored keyframes, read once while its pairs are aligned (pairs come sorted, so a
    video's pairs with later videos follow one another)."""

    def __init__(self, storage: Storage, keep: int = 256):
        self.storage, self.keep, self.held = storage, keep, {}

    def __call__(self, video_id: str):
        if video_id not in self.held:
            if len(self.held) >= self.keep:
                self.held.pop(next(iter(self.held)))  # the oldest read
            self.held[video_id] = self.storage.frames(video_id)
        return self.held[video_id]


def _candidates(storage: Storage, vectors: np.ndarray, exclude: str, probes: int = PROBES) -> list[str]:
    """Videos whose keyframes are near a few of `vectors`, most often near first."""
    votes: dict[str, int] = {}
    for near in storage.nearest_many(vectors[_probe_rows(len(vectors), probes)], NEIGHBOURS, near=True):
        for video_id, score in zip(near.video_ids, near.scores):
            if video_id != exclude and score >= MIN_SIMILARITY:
                votes[video_id] = votes.get(video_id, 0) + 1
    return sorted(votes, key=lambda v: (-votes[v], v))


def _probe_rows(count: int, probes: int) -> np.ndarray:
    """`probes` keyframes spread over the middle of `count` (a trim at either end keeps the middle)."""
    if count <= 2:
        return np.arange(min(count, 1))
    return np.unique(np.round(np.linspace(0, count - 1, min(probes, count) + 2)[1:-1]).astype(int))


def _shared(frames: Callable[[str], Frames], first: str, second: str, durations: dict[str, float],
            threshold: float) -> Shared | None:
    a, b = frames(first), frames(second)
    if len(a) > len(b):  # the shorter one is aligned within the longer
        (first, a), (second, b) = (second, b), (first, a)
    alignment = align(a.timestamps, a.vectors, b.timestamps, b.vectors)
    if alignment is None or not alignment.distinct or alignment.matched_score < threshold:
        return None
    (start, end), offset = alignment.matched, alignment.offset
    end += keyframe_interval(a.timestamps)  # the last matching keyframe's footage lasts until the next one
    videos = [(first, start, min(end, durations[first] or end)), (second, start + offset,
                                                                   min(end + offset, durations[second] or end + offset))]
    return Shared(videos, alignment.matched_score, _part(videos, durations))


def _part(videos: list[tuple[str, float, float]], durations: dict[str, float]) -> str:
    """'intro' or 'outro' when the shared range is a small part at the start (end) of every video."""
    small = all((end - start) < INTRO_SHARE * max(durations[v], 1e-9) for v, start, end in videos)
    if small and all(start <= 1.0 for _, start, _ in videos):
        return 'intro'
    if small and all(durations[v] - end <= 1.5 for v, _, end in videos):
        return 'outro'
    return 'footage'


def _groups(links: list[Shared]) -> list[Shared]:
    """Linked pairs joined into groups (a video in two pairs joins them); each video keeps the widest range."""
    parent: dict[str, str] = {}

    def root(v: str) -> str:
        while parent.setdefault(v, v) != v:
            v = parent[v]
        return v

    for link in links:
        parent[root(link.videos[0][0])] = root(link.videos[1][0])
    groups: dict[str, list[Shared]] = {}
    for link in links:
        groups.setdefault(root(link.videos[0][0]), []).append(link)
    result = []
    for members in groups.values():
        ranges: dict[str, tuple[float, float]] = {}
        for link in members:
            for video_id, start, end in link.videos:
                low, high = ranges.get(video_id, (start, end))
                ranges[video_id] = (min(low, start), max(high, end))
        parts = {link.part for link in members}
        result.append(Shared([(v, s, e) for v, (s, e) in sorted(ranges.items())],
                             float(np.mean([link.score for link in members])),
                             'footage' if 'footage' in parts or len(parts) > 1 else parts.pop()))
    return result


def clip_sources(storage: Storage, query: QueryDoc, count: int) -> list[SegmentDoc]:
    """Where the clip of `query` (its frames, embedded) lies in the stored videos, as segments."""
    if not query.frames:
        return []
    times = np.array([f.timestamp for f in query.frames], dtype=np.float64)
    vectors = np.stack([np.asarray(f.embedding, dtype=np.float32) for f in query.frames])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return [_segment(storage, found.video_id, found.start, found.end, found.score)
            for found in locate_clip(storage, times, vectors, query.duration or float(times[-1]), count)]


def duplicate_groups(storage: Storage, threshold: float) -> list[DuplicateDoc]:
    return [DuplicateDoc(videos=DocList[SegmentDoc]([_segment(storage, v, start, end, group.score)
                                                      for v, start, end in group.videos]),
                         score=group.score, part=group.part)
            for group in find_duplicates(storage, threshold)]


def _segment(storage: Storage, video_id: str, start: float, end: float, score: float) -> SegmentDoc:
    record = storage.video(video_id)
    times = storage.frames(video_id).timestamps
    index = int(np.argmin(np.abs(times - start))) if len(times) else 0
    return SegmentDoc(video_id=video_id, uri=record.path if record else '', start=round(start, 3), end=round(end, 3),
                      timestamp=round(start, 3), score=score, thumbnail=storage.thumbnail(video_id, index),
                      source='visual', text=None)
