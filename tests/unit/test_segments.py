import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executors.retrieval.segments import group_segments, sampling_interval

SECONDS = np.arange(10, dtype=float)  # one keyframe per second of a 10 s video


def group(scores, times=SECONDS, duration=10.0, margin=0.05, max_segment=30.0, limit=10, shots=(), snap=0.0):
    return group_segments(np.array(scores), np.array(times), duration, margin=margin, max_segment=max_segment,
                          limit=limit, shots=list(shots), snap=snap)


def spans(segments):
    return [(s.start, s.end) for s in segments]


def test_a_peak_grows_over_its_plateau_and_ends_one_interval_after_its_last_frame():
    best = group([0.1, 0.1, 0.5, 0.52, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1], limit=1)[0]
    assert (best.first, best.last, best.peak) == (2, 4, 3)
    assert (best.start, best.end, best.score) == (2.0, 5.0, pytest.approx(0.52))


def test_segments_are_ranked_by_peak_and_never_reuse_frames():
    segments = group([0.1, 0.6, 0.6, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1], limit=3)
    assert spans(segments) == [(6.0, 7.0), (1.0, 3.0), (0.0, 1.0)]
    assert [s.score for s in segments] == sorted((s.score for s in segments), reverse=True)


def test_a_long_plateau_is_capped_and_the_rest_becomes_a_separate_adjacent_segment():
    segments = group([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1], max_segment=3.0, limit=2)
    assert spans(segments) == [(0.0, 3.0), (3.0, 6.0)]  # touching, not overlapping (VCED's bug)


def test_growth_follows_the_higher_neighbour():
    best = group([0.1, 0.1, 0.1, 0.58, 0.6, 0.55, 0.1, 0.1, 0.1, 0.1], max_segment=2.0, limit=1)[0]
    assert (best.first, best.last) == (3, 4)


def test_edges_snap_outward_to_nearby_shot_cuts():
    scores = [0.1, 0.1, 0.1, 0.7, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert spans(group(scores, limit=1, shots=[2.4, 5.5, 8.0], snap=1.0)) == [(2.4, 5.5)]
    assert spans(group(scores, limit=1, shots=[1.5, 7.0], snap=1.0)) == [(3.0, 5.0)]  # cuts too far
    assert spans(group(scores, limit=1, shots=[3.5], snap=1.0)) == [(3.0, 5.0)]  # never inward


def test_a_cut_after_the_last_keyframe_ends_the_segment_and_starts_the_next():
    scores = [0.1, 0.1, 0.1, 0.7, 0.7, 0.5, 0.5, 0.1, 0.1, 0.1]
    assert spans(group(scores, limit=1, shots=[5.5], snap=1.0)) == [(3.0, 5.5)]
    assert spans(group(scores, limit=2, shots=[4.5], snap=1.0)) == [(3.0, 4.5), (4.5, 7.0)]


def test_snapping_never_runs_into_another_segment_or_past_the_cap():
    scores = [0.1, 0.1, 0.7, 0.7, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1]
    # 5.5 is inside (a shot of 5.5 s is longer than max_segment here: its segments stay apart)
    assert spans(group(scores, limit=2, max_segment=4.0, shots=[5.5], snap=1.0)) == [(5.0, 7.0), (2.0, 4.0)]
    assert spans(group(scores, limit=2, shots=[4.5], snap=1.0)) == [(4.5, 7.0), (2.0, 4.5)]  # both meet there
    assert spans(group(scores, limit=1, max_segment=2.0, shots=[4.5], snap=1.0)) == [(5.0, 7.0)]


def test_the_keyframes_of_one_shot_are_one_moment_snapped_to_its_cuts():
    """Issue 24.1: an image query from the middle of a 4 s shot (4-8 s) of a three-shot video gave three
    slivers of that shot (6-7, 5-6, 4-5) instead of the shot, once."""
    scores = [0.2, 0.21, 0.2, 0.22, 0.80, 0.85, 0.90, 0.82, 0.3, 0.31, 0.3, 0.29]
    moments = group(scores, times=np.arange(12.0), duration=12.0, margin=0.02, limit=8, shots=[4.0, 8.0], snap=2.0)
    assert spans(moments) == [(4.0, 8.0), (8.0, 12.0), (0.0, 4.0)]
    assert (moments[0].peak_time, moments[0].score) == (6.0, pytest.approx(0.9))
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)


def test_a_shot_longer_than_the_longest_segment_is_not_one_moment():
    scores = [0.2, 0.21, 0.2, 0.22, 0.80, 0.85, 0.90, 0.82, 0.3, 0.31, 0.3, 0.29]
    moments = group(scores, times=np.arange(12.0), duration=12.0, margin=0.02, max_segment=3.0, limit=8,
                    shots=[4.0, 8.0], snap=2.0)
    assert spans(moments)[0] == (6.0, 7.0)
    assert all(m.end - m.start <= 3.0 for m in moments)


def test_a_run_of_matching_keyframes_with_a_dip_is_one_moment():
    scores = [0.1, 0.1, 0.9, 0.87, 0.89, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert spans(group(scores, margin=0.02, limit=3))[0] == (2.0, 5.0)  # 2-3 and 3-5 touch, peaks 0.01 apart
    assert spans(group(scores, margin=0.005, limit=3))[:2] == [(2.0, 3.0), (4.0, 5.0)]  # 0.89 is not near 0.9 here


def test_end_is_clipped_to_the_duration_and_a_lone_frame_lasts_to_the_end():
    assert spans(group([0.5, 0.9], times=[0.0, 9.5], duration=10.0, limit=1)) == [(9.5, 10.0)]
    assert spans(group([0.3], times=[4.0], duration=10.0)) == [(4.0, 10.0)]
    assert sampling_interval(np.array([0.0, 0.5, 1.0, 3.0]), 4.0) == 0.5


def test_irregular_keyframes_end_at_the_next_keyframe():
    assert spans(group([0.9, 0.1, 0.5], times=[0.0, 0.5, 4.0], duration=6.0, limit=3)) == [
        (0.0, 0.5), (4.0, 6.0), (0.5, 2.5)]  # the median interval is 2 s


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=40), st.floats(0, 0.3), st.floats(1, 8),
       st.lists(st.floats(0, 40), max_size=6), st.floats(0, 3), st.integers(1, 12))
def test_segments_never_overlap_and_stay_inside_the_video(scores, margin, max_segment, shots, snap, limit):
    times = np.arange(len(scores), dtype=float)
    duration = float(len(scores))
    segments = group(scores, times=times, duration=duration, margin=margin, max_segment=max_segment,
                     limit=limit, shots=shots, snap=snap)
    assert 1 <= len(segments) <= limit
    assert [s.score for s in segments] == sorted((s.score for s in segments), reverse=True)
    assert segments[0].score == pytest.approx(max(scores))
    for s in segments:
        assert 0 <= s.start <= times[s.peak] < s.end <= duration
        assert s.end - s.start <= max(max_segment, 1.0) + 1e-9
        assert s.score + 1e-6 >= max(np.array(scores, dtype=np.float32)[s.first:s.last + 1]) - 1e-6
    ordered = sorted(spans(segments))
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(ordered, ordered[1:]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=40), st.lists(st.floats(0, 40), max_size=6),
       st.floats(0, 3), st.floats(-1, 1))
def test_a_floor_returns_exactly_the_segments_above_it_as_they_are_without_one(scores, shots, snap, floor):
    """Search passes the score a segment must reach to make the results: the segments above it, snapped as
    if all were kept (the lower ones still bound them)."""
    times = np.arange(len(scores), dtype=float)
    grouped = dict(times=times, duration=float(len(scores)), margin=0.05, max_segment=6.0, limit=8, shots=shots,
                   snap=snap)
    everything = group(scores, **grouped)
    above = group_segments(np.array(scores), times, float(len(scores)), margin=0.05, max_segment=6.0, limit=8,
                           shots=list(shots), snap=snap, floor=floor)
    assert above == [s for s in everything if s.score >= floor]


@pytest.mark.parametrize('count', [2, 3, 4, 7, 500, 501])
def test_the_sampling_interval_is_the_median_gap(count):
    times = np.cumsum(np.random.default_rng(count).random(count))
    assert sampling_interval(times, float(times[-1] + 1)) == float(np.median(np.diff(times)))


def test_keyframes_a_hair_apart_still_give_the_last_one_a_segment_with_length():
    """Found by the property test: a median gap below float resolution gave a segment start == end."""
    times = np.unique(np.array([0.2, 0.2 + 1e-16, 0.2 + 2e-16, 1.5]))
    segments = group_segments(np.array([0.1, 0.1, 0.1, 0.9], np.float32), times, 3.0, margin=0, max_segment=10,
                              limit=3)
    assert all(s.start < s.end for s in segments)


def test_peaks_are_visited_best_first_with_ties_in_time_order_however_long_the_video():
    from executors.retrieval.segments import _best_first

    rng = np.random.default_rng(1)
    for scores in (np.round(rng.normal(size=500), 1).astype(np.float32),  # many ties, also at the head's edge
                   np.full(300, 0.5, np.float32), rng.normal(size=129).astype(np.float32),
                   np.append(rng.normal(size=200), np.nan).astype(np.float32)):
        assert list(_best_first(scores)) == np.argsort(-scores, kind='stable').tolist()


def test_a_long_video_groups_as_a_short_one_would():
    """Long videos take the partial-sort path: the same segments as the plain stable order."""
    rng = np.random.default_rng(2)
    times = np.arange(600, dtype=float)
    scores = np.repeat(rng.normal(size=60), 10).astype(np.float32) + rng.normal(size=600).astype(np.float32) * 0.01
    got = group_segments(scores, times, 600.0, margin=0.02, max_segment=30.0, limit=8, shots=[99.5, 300.2], snap=2.0)
    segments = [s for s in got]
    assert 1 <= len(segments) <= 8 and segments[0].peak == int(np.argmax(scores))
    assert [s.score for s in segments] == sorted((s.score for s in segments), reverse=True)
    assert all(s.peak_time == times[s.peak] for s in segments)
