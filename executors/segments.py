"""Group one video's per-keyframe scores into non-overlapping segments around score peaks."""
from dataclasses import dataclass, replace

import numpy as np

MIN_INTERVAL = 1e-3  # seconds: no sampling is finer; keeps a last keyframe's segment from having no length


@dataclass(frozen=True)
class Segment:
    """Keyframes first..last (indices into the video's frames) played from `start` to `end` seconds."""

    first: int
    last: int
    peak: int  # index of the best-scoring keyframe
    score: float  # that keyframe's score
    start: float
    end: float


def group_segments(scores: np.ndarray, timestamps: np.ndarray, duration: float, *, margin: float,
                   max_segment: float, limit: int, shots: list[float] = (), snap: float = 0.0) -> list[Segment]:
    """The best `limit` segments of one video, best first.

    `scores` and `timestamps` are per keyframe in time order. Each segment starts from the best
    keyframe not yet used and grows to whichever neighbour scores higher while it stays within
    `margin` of the peak, is unused, and the segment fits in `max_segment` seconds. Its start is
    its first keyframe's time, its end the last keyframe's time plus one sampling interval (never
    past the next keyframe or `duration`). Then, shot cuts within `snap` seconds: an end stops at a
    cut that follows its last keyframe, and each edge moves outward to a nearby cut if that keeps
    the segment clear of the others and within `max_segment`.
    """
    scores = np.asarray(scores, dtype=np.float32)
    times = np.asarray(timestamps, dtype=np.float64)
    if len(scores) != len(times):
        raise ValueError(f'{len(scores)} scores for {len(times)} timestamps')
    interval = sampling_interval(times, duration)
    used = np.zeros(len(scores), dtype=bool)
    segments = []
    for peak in np.argsort(-scores, kind='stable'):
        if len(segments) >= limit:
            break
        if used[peak]:
            continue
        first, last = _grow(scores, times, used, int(peak), scores[peak] - margin, max_segment, interval)
        used[first:last + 1] = True
        start, end = times[first], _frame_end(times, last, interval, duration)
        segments.append(Segment(first, last, int(peak), float(scores[peak]), float(start), float(end)))
    cuts = sorted(c for c in shots if duration <= 0 or 0 < c < duration)
    return _snap_all(segments, times, cuts, snap, max_segment)


def sampling_interval(timestamps: np.ndarray, duration: float) -> float:
    """The typical gap between keyframes (the median); a lone keyframe lasts to the end of the video."""
    if len(timestamps) > 1:
        return max(float(np.median(np.diff(timestamps))), MIN_INTERVAL)
    if len(timestamps) == 1:
        return max(float(duration) - float(timestamps[0]), 0.0)
    return 0.0


def _frame_end(times: np.ndarray, last: int, interval: float, duration: float) -> float:
    end = times[last] + interval
    if last + 1 < len(times):
        end = min(end, times[last + 1])
    if duration > 0:
        end = min(end, duration)
    return float(max(end, times[last]))


def _grow(scores, times, used, peak: int, floor: float, max_segment: float, interval: float) -> tuple[int, int]:
    first = last = peak
    n = len(scores)
    while True:
        left = first - 1 if first > 0 and not used[first - 1] and scores[first - 1] >= floor else None
        right = last + 1 if last + 1 < n and not used[last + 1] and scores[last + 1] >= floor else None
        if left is not None and times[last] + interval - times[left] > max_segment:
            left = None
        if right is not None and times[right] + interval - times[first] > max_segment:
            right = None
        if left is None and right is None:
            return first, last
        if right is None or (left is not None and scores[left] >= scores[right]):
            first = left
        else:
            last = right


def _snap_all(segments: list[Segment], times: np.ndarray, shots: list[float], snap: float,
              max_segment: float) -> list[Segment]:
    """Snap edges to shot cuts, best segment first, each bounded by the (already snapped) others."""
    if not shots or snap <= 0:
        return segments
    segments = [_trim(s, times, shots) for s in segments]
    snapped = []
    for segment in segments:
        others = snapped + segments[len(snapped) + 1:]
        floor = max([o.end for o in others if o.end <= segment.start], default=float('-inf'))
        ceiling = min([o.start for o in others if o.start >= segment.end], default=float('inf'))
        start, end = segment.start, segment.end
        cut = max((c for c in shots if max(start - snap, floor) <= c < start), default=None)
        if cut is not None and end - cut <= max_segment:
            start = cut
        cut = min((c for c in shots if end < c <= min(end + snap, ceiling)), default=None)
        if cut is not None and cut - start <= max_segment:
            end = cut
        snapped.append(replace(segment, start=start, end=end))
    return snapped


def _trim(segment: Segment, times: np.ndarray, shots: list[float]) -> Segment:
    """End at a cut between the last keyframe and its assumed end: that keyframe's shot ends there."""
    cut = min((c for c in shots if times[segment.last] < c < segment.end), default=None)
    return segment if cut is None else replace(segment, end=cut)
