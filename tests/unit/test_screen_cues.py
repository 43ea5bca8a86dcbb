"""Lines read from keyframes become timed cues: a line that stays is one cue, a ticker is stitched, not flooded."""
from executors.media.near_duplicates import NearDuplicates
from executors.media.screen_cues import CueTracker, stitch
from executors.models.ocr import TextLine, spaced

import numpy as np


def line(text: str, y: float = 100, score: float = 0.95, x: float = 40) -> TextLine:
    return TextLine(text, score, (x, y, x + 10 * len(text), y + 24))


def test_a_line_that_stays_is_one_cue_from_its_first_keyframe_to_the_one_without_it():
    tracker = CueTracker()
    tracker.see(2.0, [line('quarterly revenue grew')])
    tracker.see(3.0, [line('quarterly revenue grew')])
    tracker.see(5.0, [line('quarterly revenue grew'), line('今天天气很好', y=300)])
    tracker.see(6.0, [line('今天天气很好', y=300)])
    cues = tracker.finish(9.0)
    assert [(c.start, c.end, c.text) for c in cues] == [(2.0, 6.0, 'quarterly revenue grew'), (5.0, 9.0, '今天天气很好')]


def test_recognition_jitter_continues_the_cue_and_keeps_the_surest_reading():
    tracker = CueTracker()
    tracker.see(0.0, [line('Slide 2: whale migrat1on routes', score=0.85)])
    tracker.see(1.0, [line('Slide 2: whale migration routes', score=0.99)])
    tracker.see(2.0, [line('Slide 2: whale migratlon routes', score=0.9)])
    [cue] = tracker.finish(3.0)
    assert (cue.start, cue.end, cue.text) == (0.0, 3.0, 'Slide 2: whale migration routes')


def test_the_same_words_shown_again_after_a_gap_are_a_second_cue():
    tracker = CueTracker()
    tracker.see(0.0, [line('chapter one')])
    tracker.see(1.0, [])
    tracker.see(4.0, [line('chapter one')])
    assert [(c.start, c.end) for c in tracker.finish(5.0)] == [(0.0, 1.0), (4.0, 5.0)]


def test_a_scrolling_ticker_is_stitched_into_one_cue_not_one_per_keyframe():
    news = 'BREAKING NEWS markets rally as investors cheer strong earnings from technology giants today'
    tracker = CueTracker()
    for second in range(0, 60):  # a 30-character window moving 6 characters a keyframe
        window = news[second * 6 % 60:second * 6 % 60 + 30]
        if second * 6 % 60 == 0:
            tracker.see(float(second), [])
        tracker.see(float(second) + 0.5, [line(window, y=500)])
    cues = tracker.finish(60.0)
    assert len(cues) <= 12  # each pass of the ticker is one cue (a new pass starts after a blank)
    assert any('investors cheer strong earnings' in c.text for c in cues)


def test_a_long_ticker_is_cut_into_cues_of_at_most_max_chars():
    words = ' '.join(f'word{i}' for i in range(400))
    tracker = CueTracker(max_chars=100)
    for step in range(0, len(words) - 40, 8):
        tracker.see(step / 8, [line(words[step:step + 40], y=500)])
    cues = tracker.finish(1000.0)
    assert 1 < len(cues) < len(words) // 60
    assert all(len(c.text) <= 100 for c in cues)


def test_a_piece_of_a_ticker_read_as_a_second_box_adds_no_cue():
    tracker = CueTracker()
    tracker.see(0.0, [line('markets rally as investors cheer', y=500)])
    tracker.see(1.0, [line('rally as investors cheer strong', y=500), line('investors cheer', y=502, x=600)])
    [cue] = tracker.finish(2.0)
    assert cue.text == 'markets rally as investors cheer strong'


def test_stitch_appends_what_scrolled_in():
    assert stitch('markets rally as inves', 'rally as investors cheer') == 'markets rally as investors cheer'
    assert stitch('slide one', 'something else') == 'slide one'


def test_joined_english_words_are_spaced_again_and_known_words_stay_whole():
    assert spaced('quarterlyrevenuegrew fast') == 'quarterly revenue grew fast'
    assert spaced('Information understanding 今天天气很好 00:00:01') == 'Information understanding 今天天气很好 00:00:01'


def test_a_new_subtitle_line_is_a_change_where_the_mean_difference_is_not():
    frame = np.full((224, 398, 3), 90, np.uint8)
    subtitled = frame.copy()
    subtitled[190:200, 150:250] = 255  # a short line of text: 0.3 grey levels of mean difference
    mean, largest = NearDuplicates(2.0), NearDuplicates(8.0, side=64, statistic='max')
    assert [mean.source(f) for f in (frame, subtitled)] == [0, 0]
    assert [largest.source(f) for f in (frame, subtitled, subtitled)] == [0, 1, 1]


def test_boxes_cut_out_of_one_line_are_joined_and_other_lines_are_not():
    from executors.models.ocr import joined_lines

    parts = [TextLine('whale migration', 0.9, (120, 60, 300, 88)), TextLine('blue', 0.95, (40, 62, 100, 88)),
             TextLine('far away', 0.9, (700, 60, 800, 88)), TextLine('城市夜景', 0.99, (40, 160, 200, 190))]
    assert [(line.text, line.score) for line in joined_lines(parts)] == [
        ('blue whale migration', 0.9), ('far away', 0.9), ('城市夜景', 0.99)]


def test_only_the_region_that_changed_is_read_again_with_every_line_it_meets_whole():
    from executors.screen_text_reader import PAD, changed_region

    cells = np.zeros((64, 64), bool)
    cells[57:59, 20:30] = True  # a subtitle band near the bottom of a 1280 x 720 picture
    top, bottom, left, right = changed_region(cells, (720, 1280), [])
    assert top <= 57 * 720 / 64 - PAD and bottom >= 59 * 720 / 64 + PAD and left <= 400 - PAD and right >= 600 + PAD
    assert (bottom - top) * (right - left) < 0.1 * 720 * 1280
    grown = changed_region(cells, (720, 1280), [(100, 640, 900, 670), (100, 20, 900, 60)])
    assert grown[2] <= 100 - PAD and grown[3] >= 900 + PAD and grown[0] > 60  # the line it meets, not the title
    everything = np.ones((64, 64), bool)
    assert changed_region(everything, (720, 1280), []) is None and changed_region(None, (720, 1280), []) is None
