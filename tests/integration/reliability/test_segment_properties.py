"""Property-based test of segment grouping over irregular keyframe times, shot cuts and settings."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from executors.retrieval.segments import group_segments


@st.composite
def videos(draw):
    """(scores, keyframe times, duration, shot cuts): times strictly increasing inside [0, duration)."""
    duration = draw(st.floats(0.05, 600, allow_nan=False) | st.floats(3600, 40_000, allow_nan=False))
    count = draw(st.integers(1, 60))
    fractions = draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=count, max_size=count, unique=True))
    times = np.array(sorted(fractions)) * duration
    times = np.unique(times)  # float products may collide
    scores = draw(st.lists(st.floats(-1, 1, width=32), min_size=len(times), max_size=len(times)))
    scores = draw(st.sampled_from([scores, [round(s, 1) for s in scores]]))  # ties too
    cuts = draw(st.lists(st.floats(-5, duration + 5, allow_nan=False), max_size=8))
    return np.array(scores, dtype=np.float32), times, duration, cuts


@settings(max_examples=400, deadline=None)
@given(videos(), st.floats(0, 0.5), st.floats(0.1, 60), st.floats(0, 10), st.integers(1, 20))
def test_segments_never_overlap_stay_inside_the_video_and_contain_their_best_keyframe(video, margin, max_segment,
                                                                                     snap, limit):
    scores, times, duration, cuts = video
    segments = group_segments(scores, times, duration, margin=margin, max_segment=max_segment, limit=limit,
                              shots=cuts, snap=snap)
    assert 1 <= len(segments) <= limit
    assert segments[0].score == scores.max()
    assert [s.score for s in segments] == sorted((s.score for s in segments), reverse=True)
    for s in segments:
        assert 0 <= s.start <= times[s.peak] <= s.end <= duration  # inside the video, around its best keyframe
        assert s.start < s.end or times[s.peak] == duration
        assert s.end - s.start <= max_segment + 1e-9  # however far apart the keyframes are
        assert s.first <= s.peak <= s.last and s.score == scores[s.peak] == scores[s.first:s.last + 1].max()
    spans = sorted((s.start, s.end) for s in segments)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))  # never overlap
    frames = sorted(i for s in segments for i in range(s.first, s.last + 1))
    assert len(frames) == len(set(frames))  # no keyframe in two segments
