"""Where one run of keyframes lies inside another video: their embeddings aligned in time.

Each well-matching pair of keyframes (query frame i, stored frame j) votes for the offset
t_j - t_i that would map the query onto the video; the offset most votes agree on (within one
keyframe interval) is the alignment. That tolerates missing and extra keyframes, another frame
rate, and a trim at either end. Footage without temporal structure (a static test pattern) agrees
with every offset equally: such an alignment is marked not `distinct`, since nothing in the
pictures says where the query lies.
"""
from typing import NamedTuple

import numpy as np

__all__ = ['Alignment', 'align', 'keyframe_interval']

MIN_SIMILARITY = 0.8  # cosine below which two keyframes are not the same picture
VOTES_PER_FRAME = 5  # a query keyframe's best matches that vote for an offset
# how much better the best offset must match than any offset farther than 3 intervals, as a share of what the
# runner-up lacks to a perfect match: keyframes of one video are all alike in CLIP (cosine ~0.9), so an absolute
# margin would take a copy for a still picture; a still picture's offsets all match equally (share ~0)
DISTINCT_SHARE = 0.25
DISTINCT_FLOOR = 0.01  # and by at least this cosine: pictures a model cannot tell apart (all ~0.9999) say nothing


class Alignment(NamedTuple):
    """The query's time 0 lies at `offset` seconds of the video. `score`: the mean cosine of every query
    keyframe with the video's at that offset (0 for one without a match); `matched_score`: the same over
    the keyframes that matched, whose query times span `matched` (seconds)."""

    offset: float
    score: float
    matched_score: float
    matched: tuple[float, float]
    distinct: bool


def keyframe_interval(times: np.ndarray) -> float:
    """The median gap between keyframes (seconds), 1.0 for a single keyframe."""
    gaps = np.diff(np.sort(np.asarray(times, dtype=np.float64)))
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 1.0


def align(query_times: np.ndarray, query_vectors: np.ndarray, times: np.ndarray, vectors: np.ndarray,
          min_similarity: float = MIN_SIMILARITY) -> Alignment | None:
    """The best alignment of the query keyframes (times in seconds, unit vectors) within a video's; None
    when no keyframe pair is the same picture."""
    query_times, times = np.asarray(query_times, np.float64), np.asarray(times, np.float64)
    similarity = np.asarray(query_vectors, np.float32) @ np.asarray(vectors, np.float32).T
    if not similarity.size or similarity.max() < min_similarity:
        return None
    interval = max(keyframe_interval(times), keyframe_interval(query_times))
    best = np.argsort(-similarity, axis=1)[:, :VOTES_PER_FRAME]
    rows = np.repeat(np.arange(len(query_times)), best.shape[1])
    columns = best.ravel()
    weights = similarity[rows, columns]
    voting = weights >= min_similarity
    offsets = times[columns[voting]] - query_times[rows[voting]]
    weights = weights[voting]
    bins = np.round(offsets / interval).astype(np.int64)
    tally: dict[int, float] = {}
    for b, w in zip(bins, weights):
        tally[b] = tally.get(b, 0.0) + float(w)
    chosen = max(tally, key=lambda b: (tally[b], -abs(b)))
    near = np.abs(bins - chosen) <= 1
    offset = float(np.average(offsets[near], weights=weights[near]))
    score, matched_score, matched, overlap = _score_at(offset, query_times, times, similarity, interval,
                                                       min_similarity)
    runner_up = 0.0
    for other in sorted((b for b in tally if abs(b - chosen) > 3), key=lambda b: -tally[b])[:3]:
        other_score, _, _, other_overlap = _score_at(other * interval, query_times, times, similarity, interval,
                                                     min_similarity)
        if other_overlap >= max(3, overlap / 2):  # an offset that keeps much of the query inside the video
            runner_up = max(runner_up, other_score * overlap / other_overlap)
    distinct = score - runner_up >= max(DISTINCT_SHARE * (1.0 - runner_up), DISTINCT_FLOOR)
    return Alignment(offset, score, matched_score, matched, distinct and _room_elsewhere(chosen, query_times, times,
                                                                                         interval, overlap))


def _score_at(offset: float, query_times: np.ndarray, times: np.ndarray, similarity: np.ndarray, interval: float,
              min_similarity: float) -> tuple[float, float, tuple[float, float], int]:
    """The mean over query keyframes of their best cosine with a video keyframe within one interval of
    where the offset puts them; the same over those that match; the span of query times that matched;
    how many query keyframes the offset puts inside the video."""
    shifted = query_times + offset
    near = np.abs(times[None, :] - shifted[:, None]) <= interval * 1.01
    best = np.where(near, similarity, 0.0).max(axis=1, initial=0.0)
    overlap = int(near.any(axis=1).sum())
    matched = np.flatnonzero(best >= min_similarity)
    if not len(matched):
        return float(best.mean()), 0.0, (0.0, 0.0), overlap
    span = (float(query_times[matched[0]]), float(query_times[matched[-1]]))
    return float(best.mean()), float(best[matched].mean()), span, overlap


def _room_elsewhere(chosen: int, query_times: np.ndarray, times: np.ndarray, interval: float, overlap: int) -> bool:
    """Whether some offset farther than 3 intervals keeps as much of the query inside the video as the runner-up
    needs: without one (videos of a few keyframes), nothing shows that the pictures pin the offset down."""
    lowest = int(np.floor((times.min() - query_times.max()) / interval))
    highest = int(np.ceil((times.max() - query_times.min()) / interval))
    for other in range(lowest, highest + 1):
        if abs(other - chosen) > 3:
            shifted = query_times + other * interval
            inside = int((np.abs(times[None, :] - shifted[:, None]) <= interval * 1.01).any(axis=1).sum())
            if inside >= max(3, overlap / 2):
                return True
    return False
