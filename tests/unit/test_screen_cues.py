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


def test_only_the_regions_that_changed_are_read_again_with_every_line_they_meet_whole():
    from executors.screen_text_reader import PAD, changed_regions

    cells = np.zeros((64, 64), bool)
    cells[57:59, 20:30] = True  # a subtitle band near the bottom of a 1280 x 720 picture
    [(top, bottom, left, right)] = changed_regions(cells, (720, 1280), [])
    assert top <= 57 * 720 / 64 - PAD and bottom >= 59 * 720 / 64 + PAD and left <= 400 - PAD and right >= 600 + PAD
    assert (bottom - top) * (right - left) < 0.1 * 720 * 1280
    [grown] = changed_regions(cells, (720, 1280), [(100, 640, 900, 670), (100, 20, 900, 60)])
    assert grown[2] <= 100 - PAD and grown[3] >= 900 + PAD and grown[0] > 60  # the line it meets, not the title
    cells[2:4, 50:60] = True  # and a logo far from it, top right: read on its own
    logo, band = changed_regions(cells, (720, 1280), [])
    assert logo[1] < 100 and logo[2] > 900 and band[0] > 600 and band[3] < 700
    cells[57:59, 32:36] = True  # a word two cells on along the subtitle band: read with it
    assert len(changed_regions(cells, (720, 1280), [])) == 2
    everything = np.ones((64, 64), bool)
    assert changed_regions(everything, (720, 1280), []) is None and changed_regions(None, (720, 1280), []) is None
    assert changed_regions(np.zeros((64, 64), bool), (720, 1280), []) == []


def _panned(shift: int) -> np.ndarray:
    """A busy picture that moves: random grey blocks of 6 x 6 pixels, seen `shift` pixels further along."""
    blocks = np.random.default_rng(5).integers(0, 256, (40, 70), dtype=np.uint8).repeat(6, axis=0).repeat(6, axis=1)
    return np.repeat(blocks[shift:shift + 180, shift:shift + 320, None], 3, axis=2)


def _with_line(picture: np.ndarray, strokes: range) -> np.ndarray:
    """`picture` under a subtitle: a translucent box with white upright strokes (glyphs) at the columns `strokes`."""
    picture = picture.copy()
    picture[140:164, 40:280] = picture[140:164, 40:280] // 3
    for x in strokes:
        picture[144:160, x:x + 3] = 255
    return picture


def test_a_line_over_a_moving_picture_is_steady_and_still_shown_and_the_picture_is_not():
    from executors.media.near_duplicates import thumbnail
    from executors.media.overlays import Edges, steady, still_shown

    glyphs, other_glyphs = range(50, 270, 11), range(45, 270, 7)
    first, later = Edges.of(_with_line(_panned(0), glyphs)), Edges.of(_with_line(_panned(7), glyphs))
    replaced = Edges.of(_with_line(_panned(7), other_glyphs))
    kept = thumbnail(steady(first, later).view(np.uint8), 16) >= 0.05  # share of each cell's pixels
    assert kept[12:15, 3:14].mean() > 0.8  # the cells of the line
    assert kept[:11].mean() < 0.05  # the picture above it moved: next to nothing steady there
    line = (140, 164, 40, 280)
    assert still_shown(first.crop(line), later.crop(line))
    assert not still_shown(first.crop(line), replaced.crop(line))
    faint = _with_line(np.full((180, 320, 3), 120, np.uint8), glyphs) // 8 + 100  # no edge of 96 grey levels
    assert not Edges.of(faint).edges.any()
    assert still_shown(Edges.of(faint).crop(line), Edges.of(faint.copy()).crop(line))  # compared by its grey levels
    assert not still_shown(Edges.of(faint).crop(line), Edges.of(faint // 2).crop(line))
