"""Fusion: cue hits become spoken segments; each list's scores become evidence; results of one moment
found by several lists become one result, scored by how sure each list is."""
import numpy as np
import pytest

from executors.retrieval.cue_search import CueHit
from executors.documents import SegmentDoc
from executors.retrieval.fusion import cue_segments, fuse, visual_evidence


def hit(video: str, start: float, end: float, text: str, score: float, coverage: float = 1.0) -> CueHit:
    return CueHit(video, start, end, text, 'srt', 'en', score, coverage)


def seen(video: str, start: float, end: float, score: float = 0.3) -> SegmentDoc:
    return SegmentDoc(video_id=video, uri=f'/v/{video}.mp4', start=start, end=end, timestamp=start + 0.5,
                      score=score, thumbnail=f'/t/{video}.jpg', sources=['visual'])


def said(video: str, start: float, end: float, score: float, text: str = 'words') -> SegmentDoc:
    return SegmentDoc(video_id=video, uri=f'/v/{video}.mp4', start=start, end=end, timestamp=start, score=score,
                      thumbnail=f'/t/{video}-{start:g}.jpg', source='speech', sources=['speech'], text=text)


def spans(segments: list[SegmentDoc]) -> list[tuple]:
    return [(s.video_id, s.start, s.end, s.source) for s in segments]


def test_neighbouring_hits_of_a_video_merge_with_their_best_score():
    hits = [hit('a', 10, 12, 'second', 5.0), hit('a', 7, 9, 'first', 3.0), hit('b', 1, 2, 'other', 4.0),
            hit('a', 40, 41, 'later', 1.0)]
    segments = cue_segments(hits, merge_gap=2.0, uri=lambda video: f'/v/{video}.mp4')
    assert spans(segments) == [('a', 7, 12, 'speech'), ('b', 1, 2, 'speech'), ('a', 40, 41, 'speech')]
    first = segments[0]
    assert (first.score, first.timestamp, first.text, first.uri, first.sources) == (
        5.0, 10, 'first second', '/v/a.mp4', ['speech'])


def test_merging_stops_at_the_gap_and_the_longest_segment():
    hits = [hit('a', 0, 10, 'x', 1.0), hit('a', 10.5, 20, 'y', 1.0), hit('a', 20.5, 35, 'z', 1.0)]
    assert spans(cue_segments(hits, merge_gap=1.0, max_segment=30)) == [('a', 0, 20, 'speech'), ('a', 20.5, 35, 'speech')]
    assert len(cue_segments(hits, merge_gap=0.1)) == 3


def test_a_cue_longer_than_the_longest_segment_is_cut_to_it():
    assert spans(cue_segments([hit('a', 5, 50, 'a very long cue', 1.0)], max_segment=30)) == [('a', 5, 35, 'speech')]


def test_given_scores_replace_the_hits_own():
    hits = [hit('a', 0, 1, 'x', 9.0), hit('b', 0, 1, 'y', 1.0)]
    assert [s.video_id for s in cue_segments(hits, scores=[0.2, 0.8])] == ['b', 'a']


def test_the_same_words_in_two_languages_files_show_once():
    assert cue_segments([hit('a', 1, 2, 'hello', 2.0), hit('a', 1, 2, 'hello', 1.0)])[0].text == 'hello'


def test_visual_evidence_is_how_far_a_cosine_stands_above_the_background():
    rng = np.random.default_rng(0)
    background = rng.normal(0.2, 0.01, 500)
    strong, middling, noise = visual_evidence([0.30, 0.25, 0.23], background)  # z 10, 5 and 3 (chance: 3.5)
    assert strong == 1.0 and 0.3 < middling < 0.7 and noise < 0.05
    assert visual_evidence([0.9], np.empty(0)) == [0.0]


def test_a_cue_holding_every_query_word_beats_a_middling_visual_match():
    """Issue 24.4: rank fusion scored the top of each list 1/61, and the tie went by video id ('a' < 'b')."""
    fused = fuse({'visual': [seen('a', 0, 5, score=0.5)], 'speech': [said('b', 3, 6, 0.95)]}, top=10)
    assert spans(fused) == [('b', 3, 6, 'speech'), ('a', 0, 5, 'visual')]
    assert fused[0].score > fused[1].score


def test_no_combination_outscores_a_cue_holding_every_query_word():
    """Issue 24 targets: `--in all` >= `--in speech`. Summed, a partial cue and a middling keyframe (0.5 + 0.6) beat
    the cue holding every word (1.0) in another video; combined as independent evidence they cannot."""
    fused = fuse({'visual': [seen('b', 0, 5, score=0.6)], 'speech': [said('a', 3, 6, 1.0), said('b', 1, 4, 0.5)]},
                 top=10)
    assert spans(fused)[0] == ('a', 3, 6, 'speech') and fused[0].score == 1.0 > fused[1].score == pytest.approx(0.8)


def test_a_strong_visual_match_beats_a_weak_partial_spoken_one():
    fused = fuse({'visual': [seen('b', 0, 5, score=1.0)], 'speech': [said('a', 3, 6, 0.45)]}, top=10)
    assert [s.source for s in fused] == ['visual', 'speech'] and fused[0].score > fused[1].score


def test_a_moment_seen_and_said_keeps_its_strongest_span_not_the_union():
    """Issue 24.2: 'fireplace' returned 0.0-19.8 s, the whole video, for a cue at 5.75-9.75."""
    visual = [seen('a', 0.0, 19.8, score=0.4), seen('b', 0, 5, score=0.3)]
    fused = fuse({'visual': visual, 'speech': [said('a', 5.75, 9.75, 0.97, 'by the fireplace')]}, top=10)
    assert spans(fused) == [('a', 5.75, 9.75, 'both'), ('b', 0, 5, 'visual')]
    both = fused[0]
    assert both.sources == ['visual', 'speech'] and both.text == 'by the fireplace'
    assert both.score == pytest.approx(1 - 0.6 * 0.03) and both.thumbnail == '/t/a-5.75.jpg' and both.timestamp == 5.75
    stronger_seen = fuse({'visual': [seen('a', 4, 8, score=0.9)], 'speech': [said('a', 7, 12, 0.3)]}, top=10)
    assert spans(stronger_seen) == [('a', 4, 8, 'both')] and stronger_seen[0].text == 'words'


def test_spoken_result_keeps_its_cue_times_when_nothing_overlaps():
    fused = fuse({'visual': [seen('a', 0, 5, score=0.6)], 'speech': [said('a', 30, 33, 0.9, 'far later')]}, top=10)
    assert spans(fused) == [('a', 30, 33, 'speech'), ('a', 0, 5, 'visual')]
    assert fused[0].text == 'far later' and fused[1].text is None


def test_slack_joins_moments_a_little_apart():
    lists = {'visual': [seen('a', 0, 5)], 'speech': [said('a', 5.5, 7, 0.5)]}
    assert [s.source for s in fuse(lists, top=10, slack=1.0)] == ['both']
    assert [s.source for s in fuse(lists, top=10, slack=0.0)] == ['speech', 'visual']


def test_each_list_joins_a_moment_once():
    fused = fuse({'visual': [seen('a', 0, 10, score=0.9)], 'speech': [said('a', 1, 2, 0.8, 'one'),
                                                                    said('a', 8, 9, 0.7, 'two')]}, top=10)
    assert [(s.source, s.text) for s in fused] == [('both', 'one'), ('speech', 'two')]


def test_any_number_of_named_lists_fuse():
    lists = {'visual': [seen('a', 0, 5, 0.5)], 'speech': [said('a', 1, 3, 0.6)],
             'screen': [said('a', 2, 4, 0.7, 'EXIT'), said('c', 0, 2, 0.9, 'SALE')]}
    fused = fuse(lists, top=10)
    assert spans(fused) == [('a', 2, 4, 'both'), ('c', 0, 2, 'screen')]
    assert fused[0].sources == ['visual', 'speech', 'screen'] and fused[0].score == pytest.approx(1 - 0.5 * 0.4 * 0.3)
    assert fused[1].sources == ['screen']


def test_weights_tune_the_order():
    lists = {'visual': [seen('v', 0, 5, 0.5)], 'speech': [said('s', 0, 5, 0.5)]}
    assert [s.source for s in fuse(lists, top=10, weights={'speech': 2.0})] == ['speech', 'visual']
    assert [s.source for s in fuse(lists, top=10, weights={'visual': 2.0})] == ['visual', 'speech']
    assert fuse(lists, top=10, weights={'speech': 0.0})[1].score == 0.0


def test_top_cuts_and_inputs_are_left_alone():
    visual = [seen('a', i * 10, i * 10 + 5, score=0.9 - i / 10) for i in range(5)]
    fused = fuse({'visual': visual}, top=3)
    assert spans(fused) == spans(visual[:3]) and visual[0].score == 0.9 and visual[0].source == 'visual'
    assert fuse({}, top=5) == [] and fuse({'visual': visual}, top=0) == []


def test_order_is_deterministic_for_ties():
    lists = {'visual': [seen('b', 0, 1, 0.5), seen('a', 0, 1, 0.5)], 'speech': [said('d', 0, 1, 0.5),
                                                                                said('c', 0, 1, 0.5)]}
    first = spans(fuse(lists, top=10))
    assert first == spans(fuse(lists, top=10)) == spans(fuse(dict(reversed(lists.items())), top=10))


@pytest.mark.parametrize('args', [dict(weights={'visual': -1}), dict(slack=-1)])
def test_bad_settings_are_refused(args):
    with pytest.raises(ValueError, match='fusion needs'):
        fuse({}, top=1, **args)


def test_the_first_results_are_the_same_whatever_the_number_asked():
    """Result documents are made only for the moments returned: asking for fewer returns a prefix."""
    rng = np.random.default_rng(3)
    visual = [seen(f'v{n % 7}', float(n), n + 2.0, float(s)) for n, s in enumerate(rng.uniform(0, 1, 40))]
    spoken = [said(f'v{n % 5}', float(n) + 0.5, n + 1.5, float(s)) for n, s in enumerate(rng.uniform(0, 1, 30))]
    lists = {'visual': sorted(visual, key=lambda s: -s.score), 'speech': sorted(spoken, key=lambda s: -s.score)}
    everything = fuse(lists, 100)
    for top in (1, 5, 12):
        fewer = fuse(lists, top)
        assert [(s.video_id, s.start, s.end, s.score, s.sources) for s in fewer] == \
            [(s.video_id, s.start, s.end, s.score, s.sources) for s in everything[:top]]
