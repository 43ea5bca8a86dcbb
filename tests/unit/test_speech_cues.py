"""Recognised segments become cues from their first word to their last, split at long pauses (issue 24.3)."""
from types import SimpleNamespace

from executors.models.whisper import MAX_PAUSE, spoken_parts


def word(text: str, start: float, end: float) -> SimpleNamespace:
    return SimpleNamespace(word=text, start=start, end=end)


def segment(start: float, end: float, words: list | None, text: str = '') -> SimpleNamespace:
    return SimpleNamespace(start=start, end=end, text=text or ''.join(w.word for w in words or []), words=words)


def test_a_cue_runs_from_its_first_word_to_its_last():
    """Whisper's segment after a silence starts at the previous segment's end (8.0 here), not at its words."""
    parts = spoken_parts(segment(8.0, 14.0, [word(' She', 12.05, 12.3), word(' planted', 12.3, 12.8),
                                             word(' tomatoes.', 12.8, 13.5)]))
    assert parts == [(12.05, 13.5, 'She planted tomatoes.')]


def test_a_long_pause_between_words_splits_the_cue():
    assert MAX_PAUSE < 2.0
    words = [word(' Our', 1.0, 1.2), word(' train.', 1.2, 1.8), word(' She', 3.8, 4.0), word(' waved.', 4.0, 4.4)]
    assert spoken_parts(segment(0.5, 4.6, words)) == [(1.0, 1.8, 'Our train.'), (3.8, 4.4, 'She waved.')]
    assert len(spoken_parts(segment(0.5, 4.6, [word(' Our', 1.0, 1.2), word(' train.', 2.0, 2.5)]))) == 1


def test_a_segment_without_words_keeps_its_own_times():
    assert spoken_parts(segment(2.0, 3.0, None, ' hello')) == [(2.0, 3.0, 'hello')]
    assert spoken_parts(segment(2.0, 3.0, [word(' ', 2.1, 2.2)], ' hello')) == [(2.0, 3.0, 'hello')]
