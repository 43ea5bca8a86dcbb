"""Fusion: cue hits become spoken segments; reciprocal rank fusion merges what is seen and said at one moment."""
import pytest

from executors.retrieval.cue_search import CueHit
from executors.documents import SegmentDoc
from executors.retrieval.fusion import cue_segments, fuse


def hit(video: str, start: float, end: float, text: str, score: float) -> CueHit:
    return CueHit(video, start, end, text, 'srt', 'en', score)


def seen(video: str, start: float, end: float, score: float = 0.3) -> SegmentDoc:
    return SegmentDoc(video_id=video, uri=f'/v/{video}.mp4', start=start, end=end, timestamp=start + 0.5,
                      score=score, thumbnail=f'/t/{video}.jpg')


def spans(segments: list[SegmentDoc]) -> list[tuple]:
    return [(s.video_id, s.start, s.end, s.source) for s in segments]


def test_neighbouring_hits_of_a_video_merge_with_their_best_score():
    hits = [hit('a', 10, 12, 'second', 5.0), hit('a', 7, 9, 'first', 3.0), hit('b', 1, 2, 'other', 4.0),
            hit('a', 40, 41, 'later', 1.0)]
    segments = cue_segments(hits, merge_gap=2.0, uri=lambda video: f'/v/{video}.mp4')
    assert spans(segments) == [('a', 7, 12, 'speech'), ('b', 1, 2, 'speech'), ('a', 40, 41, 'speech')]
    first = segments[0]
    assert (first.score, first.timestamp, first.text, first.uri) == (5.0, 10, 'first second', '/v/a.mp4')


def test_merging_stops_at_the_gap_and_the_longest_segment():
    hits = [hit('a', 0, 10, 'x', 1.0), hit('a', 10.5, 20, 'y', 1.0), hit('a', 20.5, 35, 'z', 1.0)]
    assert spans(cue_segments(hits, merge_gap=1.0, max_segment=30)) == [('a', 0, 20, 'speech'), ('a', 20.5, 35, 'speech')]
    assert len(cue_segments(hits, merge_gap=0.1)) == 3


def test_the_same_words_in_two_languages_files_show_once():
    assert cue_segments([hit('a', 1, 2, 'hello', 2.0), hit('a', 1, 2, 'hello', 1.0)])[0].text == 'hello'


def test_overlapping_visual_and_spoken_segments_become_one_both_result():
    visual = [seen('a', 10, 15), seen('b', 0, 5)]
    spoken = cue_segments([hit('a', 14, 18, 'the beach at last', 3.0)])
    fused = fuse(visual, spoken, top=10)
    assert spans(fused) == [('a', 10, 18, 'both'), ('b', 0, 5, 'visual')]
    both = fused[0]
    assert both.text == 'the beach at last' and both.thumbnail == '/t/a.jpg' and both.timestamp == 10.5
    assert both.score == pytest.approx(1 / 61 + 1 / 61)
    assert fused[1].score == pytest.approx(1 / 62) and fused[1].text is None


def test_spoken_result_keeps_its_cue_times_when_nothing_overlaps():
    fused = fuse([seen('a', 0, 5)], cue_segments([hit('a', 30, 33, 'far later', 1.0)]), top=10)
    assert spans(fused) == [('a', 0, 5, 'visual'), ('a', 30, 33, 'speech')]  # tie at rank 1: by start
    assert fused[1].text == 'far later' and fused[1].score == fused[0].score


def test_slack_joins_moments_a_little_apart():
    visual, spoken = [seen('a', 0, 5)], cue_segments([hit('a', 5.5, 7, 'just after', 1.0)])
    assert [s.source for s in fuse(visual, spoken, top=10, slack=1.0)] == ['both']
    assert [s.source for s in fuse(visual, spoken, top=10, slack=0.0)] == ['visual', 'speech']


def test_each_visual_segment_merges_with_one_spoken_segment():
    spoken = cue_segments([hit('a', 1, 2, 'one', 2.0), hit('a', 8, 9, 'two', 1.0)], merge_gap=0.5)
    fused = fuse([seen('a', 0, 10)], spoken, top=10)
    assert [(s.source, s.text) for s in fused] == [('both', 'one'), ('speech', 'two')]


def test_weights_and_k_tune_the_order():
    visual, spoken = [seen('v', 0, 5)], cue_segments([hit('s', 0, 5, 'said', 1.0)])
    assert [s.source for s in fuse(visual, spoken, top=10, speech_weight=2.0)] == ['speech', 'visual']
    assert [s.source for s in fuse(visual, spoken, top=10, visual_weight=2.0)] == ['visual', 'speech']
    assert [s.source for s in fuse(visual, spoken, top=10, speech_weight=0.0)][0] == 'visual'
    deep = [seen('v', i * 10, i * 10 + 5) for i in range(5)]
    fused = fuse(deep, spoken, top=3, k=1)
    assert [s.score for s in fused] == pytest.approx([1 / 2, 1 / 2, 1 / 3])


def test_top_cuts_and_inputs_are_left_alone():
    visual = [seen('a', i * 10, i * 10 + 5, score=0.9 - i / 10) for i in range(5)]
    fused = fuse(visual, [], top=3)
    assert spans(fused) == spans(visual[:3]) and visual[0].score == 0.9
    assert fuse([], [], top=5) == [] and fuse(visual, [], top=0) == []


def test_order_is_deterministic_for_ties():
    visual = [seen('b', 0, 1), seen('a', 0, 1)]
    spoken = cue_segments([hit('c', 0, 1, 'x', 1.0), hit('d', 0, 1, 'y', 1.0)])
    first = spans(fuse(visual, spoken, top=10))
    assert first == spans(fuse(visual, spoken, top=10))
    assert first[:2] == [('b', 0, 1, 'visual'), ('c', 0, 1, 'speech')]  # equal rank-1 scores: by video id


@pytest.mark.parametrize('args', [dict(k=0), dict(visual_weight=-1)])
def test_bad_settings_are_refused(args):
    with pytest.raises(ValueError, match='fusion needs'):
        fuse([], [], top=1, **args)
