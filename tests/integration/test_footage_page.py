"""The page's side of issue 27: search by video (where a clip comes from) and the Library marking videos that
share footage, driven by streamlit.testing's AppTest over the footage library of tests/footage_fixtures.py."""
import re
import sys
from pathlib import Path

import pytest
import streamlit as st

from tests.footage_fixtures import footage  # noqa: F401 (a fixture)
from tests.integration.test_app import ROOT, click, open_page, players, texts


@pytest.fixture
def page(monkeypatch, footage, tmp_path):  # noqa: F811
    root, common = footage
    monkeypatch.setattr(sys, 'argv', ['app.py', '--flow', str(ROOT / 'flow.yml'), *common, '--text-model', 'clip',
                                      '--asr', 'off', '--videos', str(tmp_path / 'uploads')])
    yield open_page()
    st.cache_resource.clear()  # closes the Library, releasing the workspace for the CLI tests


def video_lines(at) -> dict[str, str]:
    """The Library tab's line of each video (name, size, and what it shares), by file name."""
    lines = [m.value.replace('\\', '') for m in at.markdown if m.value.startswith('**') and 'fps' in m.value]
    return {line.split('**')[1]: line for line in lines}


@pytest.mark.parametrize('clip', ['clip.mp4', 'clip_letterboxed.mp4'])
def test_search_by_video_lists_the_source_and_plays_it_from_where_the_clip_starts(page, footage, clip):  # noqa: F811
    root, _ = footage
    page.text_input(key='query').input('fireworks')  # typed too: the clip wins, and the page says so
    page.file_uploader(key='query_video').set_value((clip, (root / clip).read_bytes(), 'video/mp4'))
    at = click(page, 'Search')
    assert not at.exception and not at.error
    best = at.session_state['results'][0]
    assert Path(best.uri).name == 'gradients.mp4' and abs(best.start - 4.0) <= 1.0 and abs(best.end - 7.2) <= 1.0
    [player] = players(at)
    assert f'#t={best.start:.2f},{best.end:.2f}"' in player  # the source, from where the clip starts
    assert f'Where the clip {clip} comes from' in texts(at)
    assert [i.value for i in at.info] == [f'Searched for where the clip {clip} comes from; the typed text was not '
                                          'used. Remove the clip (under “Search by video instead”) to search by them.']
    assert re.search(r'1\. gradients\.mp4', texts(at))
    assert re.search(r'00:0[345]–00:0[789]\*\* · ▰▰▰▰▰ best match · seen', texts(at))


def test_a_file_that_is_not_a_video_is_told_in_one_line(page):
    page.file_uploader(key='query_video').set_value(('notes.mp4', b'not a video', 'video/mp4'))
    at = click(page, 'Search')
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith('notes.mp4: ')


def test_the_library_marks_the_videos_that_share_footage(page):
    lines = video_lines(page)
    assert len(lines) == 6
    assert re.search(r'same footage as mandelbrot(_letterboxed)?\.mp4, mandelbrot(_letterboxed)?\.mp4 '
                     r'\(00:00–00:0\d here\)', lines['mandelbrot_excerpt.mp4'])
    assert 'same footage as mandelbrot_excerpt.mp4' in lines['mandelbrot.mp4']
    assert re.search(r'\(00:0[0-2]–00:1[0-2] here\)', lines['mandelbrot.mp4'])
    assert 'same footage as' in lines['mandelbrot_letterboxed.mp4']
    for alone in ['gradients.mp4', 'bars.mp4', 'bars_30fps.mp4']:  # two videos of one still pattern are not a copy
        assert 'same footage' not in lines[alone] and 'shared with' not in lines[alone]
