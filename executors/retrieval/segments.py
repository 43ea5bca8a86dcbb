"""Group one video's per-keyframe scores into non-overlapping moments: segments grown around score peaks,
joined where they share a shot or touch, snapped to shot cuts."""
import bisect
from typing import NamedTuple

import numpy as np

MIN_INTERVAL = 1e-3  # seconds: no sampling is finer; keeps a last keyframe's segment from having no length


class Segment(NamedTuple):
    """Keyframes first..last (indices into the video's frames) played from `start` to `end` seconds.
    A NamedTuple: a search makes thousands of them, each in a fifth of a frozen dataclass's time."""

    first: int
    last: int
    peak: int  # index of the best-scoring keyframe
    score: float  # that keyframe's score
    start: float
    end: float
    peak_time: float = 0.0  # that keyframe's time, seconds


def group_segments(scores: np.ndarray, timestamps: np.ndarray, duration: float, *, margin: float,
                   max_segment: float, limit: int, shots: list[float] = (), snap: float = 0.0,
                   floor: float = float('-inf')) -> list[Segment]:
    """The best `limit` segments of one video, best first; of these, only those scoring `floor` or
    more are returned (the others are still grown, as they bound the snapping of those returned).

    `scores` and `timestamps` are per keyframe in time order. Each segment starts from the best
    keyframe not yet used and grows to whichever neighbour scores higher while it stays within
    `margin` of the peak, is unused, and the segment fits in `max_segment` seconds. Its start is
    its first keyframe's time, its end the last keyframe's time plus one sampling interval (never
    past the next keyframe or `duration`). Shot cuts within `snap` seconds end a segment at a cut that
    follows its last keyframe. The segments then join into moments (join_moments: those sharing a
    shot, or touching with near scores), and each moment's edges move outward to a cut within `snap`
    seconds if that keeps it clear of the others and within `max_segment`.
    """
    scores = np.asarray(scores, dtype=np.float32)
    times = np.asarray(timestamps, dtype=np.float64)
    if len(scores) != len(times):
        raise ValueError(f'{len(scores)} scores for {len(times)} timestamps')
    interval = min(sampling_interval(times, duration), max_segment)  # keyframes hours apart: still one moment's length
    # the growing walks over Python floats: the same values and comparisons as over the arrays, many
    # times faster one element at a time (a search groups a few thousand keyframes per query)
    values, seconds = scores.tolist(), times.tolist()
    used = [False] * len(values)
    segments = []
    for peak in _best_first(scores):
        if len(segments) >= limit:
            break
        if used[peak]:
            continue
        lowest = float(scores[peak] - margin)  # in float32, as the scores
        first, last = _grow(values, seconds, used, peak, lowest, max_segment, interval)
        used[first:last + 1] = [True] * (last + 1 - first)
        start, end = seconds[first], _frame_end(seconds, last, interval, duration)
        segments.append(Segment(first, last, peak, values[peak], start, end, seconds[peak]))
    cuts = sorted(shots)
    if duration > 0:  # the cuts inside the video
        cuts = cuts[bisect.bisect_right(cuts, 0.0):bisect.bisect_left(cuts, duration)]
    if cuts and snap > 0:
        segments = [_trim(s, seconds, cuts) for s in segments]
    moments = join_moments(segments, cuts, margin=margin, max_segment=max_segment, duration=duration,
                           spread=float(scores.max() - scores.min()) if len(scores) else 0.0)
    wanted = next((i for i, moment in enumerate(moments) if moment.score < floor), len(moments))
    if not wanted:
        return []
    return _snap_all(moments, cuts, snap, max_segment, wanted)


def join_moments(segments: list[Segment], cuts: list[float], *, margin: float, max_segment: float,
                 duration: float = 0.0, spread: float = float('inf')) -> list[Segment]:
    """One video's segments (best first, not overlapping) joined into moments, best first.

    Taking the segments best first, each joins the first moment that it touches (or overlaps) while
    its score is within `margin` of the moment's, or that it shares a shot with (a shot, between two
    of the ascending `cuts` or a cut and an end of the video, of at most `max_segment` seconds) while
    it matches too: it scores within half the `spread` of the video's keyframe scores of the moment's.
    The two together must span at most `max_segment` seconds; else it starts a moment of its own.
    A moment spans its segments and keeps its first (best) segment's peak and score.
    """
    bounds = [0.0, *cuts, duration if duration > 0 else float('inf')]
    moments: list[Segment] = []
    for segment in segments:
        inside = next((i for i, m in enumerate(moments) if m.start <= segment.start and segment.end <= m.end), None)
        if inside is not None:  # in a gap between a moment's segments: part of it
            moments[inside] = _joined(moments[inside], segment)
            continue
        for i, moment in enumerate(moments):
            joined = _joined(moment, segment)
            if joined.end - joined.start > max_segment + 1e-9 or \
                    any(o.start < joined.end and joined.start < o.end for o in moments if o is not moment):
                continue
            touching = segment.start <= moment.end + 1e-6 and moment.start <= segment.end + 1e-6
            if (touching and segment.score >= np.float32(moment.score - margin)) or \
                    (cuts and segment.score >= moment.score - spread / 2
                     and _share_a_shot(moment, segment, bounds, max_segment)):
                moments[i] = joined
                break
        else:
            moments.append(segment)
    return moments


def _joined(moment: Segment, segment: Segment) -> Segment:
    """The moment spanning a segment too, with its own peak and score."""
    return Segment(min(moment.first, segment.first), max(moment.last, segment.last), moment.peak, moment.score,
                   min(moment.start, segment.start), max(moment.end, segment.end), moment.peak_time)


def _shots(segment: Segment, bounds: list[float]) -> range:
    """Indices of the shots (between consecutive `bounds`) whose inside the segment reaches."""
    return range(bisect.bisect_right(bounds, segment.start) - 1, bisect.bisect_left(bounds, segment.end))


def _share_a_shot(one: Segment, other: Segment, bounds: list[float], max_segment: float) -> bool:
    shared = set(_shots(one, bounds)) & set(_shots(other, bounds))
    return any(bounds[k + 1] - bounds[k] <= max_segment + 1e-9 for k in shared)


def _best_first(scores: np.ndarray, head: int = 64):
    """Keyframe indices by descending score, ties in time order (a stable argsort of -scores); only
    the best `head` are sorted unless the caller reads past them."""
    if len(scores) > 2 * head and np.isfinite(scores).all():
        threshold = np.partition(scores, len(scores) - head)[len(scores) - head]
        best = np.flatnonzero(scores >= threshold)  # every keyframe tied with the head's last, too
        yield from best[np.argsort(-scores[best], kind='stable')].tolist()
        rest = np.flatnonzero(scores < threshold)
        yield from rest[np.argsort(-scores[rest], kind='stable')].tolist()
    else:
        yield from np.argsort(-scores, kind='stable').tolist()


def sampling_interval(timestamps: np.ndarray, duration: float) -> float:
    """The typical gap between keyframes (the median); a lone keyframe lasts to the end of the video."""
    if len(timestamps) > 1:
        gaps = np.diff(timestamps)
        middle = (len(gaps) - 1) // 2, len(gaps) // 2
        low, high = np.partition(gaps, middle)[list(middle)]  # np.median's value, at a fifth of its cost
        return max(float((low + high) / 2), MIN_INTERVAL)
    if len(timestamps) == 1:
        return max(float(duration) - float(timestamps[0]), 0.0)
    return 0.0


def _frame_end(times: list[float], last: int, interval: float, duration: float) -> float:
    end = times[last] + interval
    if last + 1 < len(times):
        end = min(end, times[last + 1])
    if duration > 0:
        end = min(end, duration)
    return float(max(end, times[last]))


def _grow(scores: list[float], times: list[float], used: list[bool], peak: int, floor: float, max_segment: float,
          interval: float) -> tuple[int, int]:
    n = len(scores)
    first = last = peak
    while first > 0 and not used[first - 1] and scores[first - 1] >= floor:
        first -= 1
    while last + 1 < n and not used[last + 1] and scores[last + 1] >= floor:
        last += 1
    if times[last] + interval - times[first] <= max_segment:
        return first, last  # the whole run fits: growing step by step would reach the same ends
    first = last = peak
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


def _snap_all(segments: list[Segment], cuts: list[float], snap: float, max_segment: float,
              wanted: int) -> list[Segment]:
    """The first `wanted` segments with their edges snapped to shot cuts (`cuts` ascending), best
    first, each bounded by the others (those before it already snapped)."""
    if not cuts or snap <= 0:
        return segments[:wanted]
    snapped: list[Segment] = []
    for segment in segments[:wanted]:
        start, end = segment.start, segment.end
        before = bisect.bisect_left(cuts, start) - 1  # the last cut before the start
        after = bisect.bisect_right(cuts, end)  # the first cut after the end
        if (before < 0 or cuts[before] < start - snap) and (after == len(cuts) or cuts[after] > end + snap):
            snapped.append(segment)  # no cut within reach: the others need not be looked at
            continue
        others = snapped + segments[len(snapped) + 1:]
        floor = max([o.end for o in others if o.end <= start], default=float('-inf'))
        ceiling = min([o.start for o in others if o.start >= end], default=float('inf'))
        if before >= 0 and cuts[before] >= max(start - snap, floor) and end - cuts[before] <= max_segment:
            start = cuts[before]
        if after < len(cuts) and cuts[after] <= min(end + snap, ceiling) and cuts[after] - start <= max_segment:
            end = cuts[after]
        snapped.append(segment if (start, end) == (segment.start, segment.end) else _moved(segment, start, end))
    return snapped


def _trim(segment: Segment, times: list[float], cuts: list[float]) -> Segment:
    """End at a cut between the last keyframe and its assumed end: that keyframe's shot ends there."""
    after = bisect.bisect_right(cuts, times[segment.last])
    return _moved(segment, segment.start, cuts[after]) if after < len(cuts) and cuts[after] < segment.end else segment


def _moved(segment: Segment, start: float, end: float) -> Segment:
    """The segment with new edges (Segment._replace, without its per-call keyword handling)."""
    return Segment(segment.first, segment.last, segment.peak, segment.score, start, end, segment.peak_time)
