"""The Streamlit page, driven by streamlit.testing's AppTest with the tiny CLIP checkpoint."""
import re
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
TIME_RANGE = re.compile(r'^\d\d:\d\d–\d\d:\d\d · [▰▱]{5} (best|strong|fair|weak) match · (seen|said|seen and said)$')


@pytest.fixture
def uploads(tmp_path) -> Path:
    return tmp_path / 'uploads'


@pytest.fixture
def argv(monkeypatch, flow_args, uploads):
    """The options as given after `streamlit run app.py --`; the shared Library closed afterwards."""
    monkeypatch.setattr(sys, 'argv', ['app.py', *flow_args, '--text-model', 'clip', '--videos', str(uploads)])
    yield
    st.cache_resource.clear()  # closes the Library and the media server (on_release), releasing the workspace


def open_page() -> AppTest:
    """One browser tab: a session of the server (every session shares the Library)."""
    return AppTest.from_file(str(ROOT / 'app.py'), default_timeout=120).run()


@pytest.fixture
def page(argv):
    return open_page()


@pytest.fixture
def indexed(page, sample_videos):
    """The page after bars.mp4 and pattern.mp4 were uploaded and indexed."""
    return index_uploads(page, [(v.name, v.read_bytes()) for v in sample_videos[:2]])


def click(at, label: str) -> AppTest:
    """Click the button labelled `label` (key-less form buttons) and rerun."""
    return at.button[[b.label for b in at.button].index(label)].click().run()


def search(at, text: str = '', top: int | None = None, by: str | None = None) -> AppTest:
    at.text_input(key='query').input(text)
    if top is not None:
        at.number_input[0].set_value(top)
    if by is not None:
        at.radio[0].set_value(by)
    return click(at, 'Search')


def index_uploads(at, files: list[tuple[str, bytes]]) -> AppTest:
    """Upload `files` in the Add videos tab, submit, and rerun until the summary shows."""
    at.file_uploader(key='uploads').set_value([(name, data, 'video/mp4') for name, data in files])
    click(at, 'Add and index')
    deadline = time.monotonic() + 120
    while not at.session_state['index_job']['done'] and time.monotonic() < deadline:
        time.sleep(0.2)
    return at.run()


def players(at) -> list[str]:
    return [h.proto.body for h in at.html if '<video' in h.proto.body]


def texts(at) -> str:
    return ' '.join(e.value for e in [*at.markdown, *at.caption, *at.info]).replace('\\', '')


def test_empty_index_explains_what_to_do(page):
    assert not page.exception
    infos = [i.value for i in page.info]
    assert any('Nothing is indexed yet' in text and 'Add videos' in text for text in infos)
    assert any('library is empty' in text for text in infos)


def test_add_with_no_video_uploaded_yet_says_to_wait_for_the_upload(page):
    """A click before the browser finished uploading submits the form without the file (Streamlit counts a
    file only once it is uploaded): the page says to wait for it, not that nothing was chosen."""
    at = click(page, 'Add and index')
    assert [w.value for w in at.warning] == ['No video has been uploaded to this form yet: choose one or more video '
                                             'files, wait until each is listed with its size, then click Add and index.']


def test_upload_index_search_play(page, sample_videos, uploads):
    bars, pattern, _ = sample_videos
    files = [('plage été 東京 🎬.mp4', bars.read_bytes()), ('../../pattern.mp4', pattern.read_bytes()),
             ('notes.mp4', b'not a video')]
    at = index_uploads(page, files)
    assert not at.exception
    assert [s.value for s in [*at.success, *at.warning]] == ['2 indexed, 0 already indexed, 1 failed']
    assert len(at.error) == 1 and at.error[0].value.startswith('notes.mp4: ')
    assert sorted(p.name for p in uploads.iterdir()) == ['pattern.mp4', 'plage été 東京 🎬.mp4']  # the failed one is gone
    assert '2 videos · 00:07 · ' in texts(at)

    # search, in any language: cards with a name, a time range and a strength in words (no raw score); the best
    # one plays at once
    at = search(at, 'barres de couleur, テストカード')
    assert not at.exception and [e.value for e in at.error if not e.value.startswith('notes.mp4: ')] == []
    assert len([c.value for c in at.caption if TIME_RANGE.match(c.value)]) >= 2
    assert 'score' not in texts(at) and 'best match' in texts(at)
    best = at.session_state['results'][0]
    [player] = players(at)
    assert re.search(r'src="http://127\.0\.0\.1:\d+/media/[\w-]{32}/[^"]+#t=\d+\.\d\d,\d+\.\d\d"', player)
    assert f'#t={best.start:.2f},{best.end:.2f}"' in player
    assert ' autoplay muted ' in player and 'controls' in player  # muted: browsers only autoplay silent video
    assert [b.proto.label for b in at.get('download_button')] == ['Download this segment']
    assert at.button(key='play-0').label == 'Playing' and at.button(key='play-0').disabled

    # opening another card plays that one
    second = at.session_state['results'][1]
    at = at.button(key='play-1').click().run()
    assert at.session_state['playing'] == 1 and at.button(key='play-1').label == 'Playing'
    assert [h.value for h in at.subheader][0].replace('\\', '') == Path(second.uri).name
    assert f'#t={second.start:.2f},{second.end:.2f}"' in players(at)[0]


def test_a_file_already_indexed_is_told_at_once_and_its_copy_removed(indexed, sample_videos, uploads, monkeypatch):
    from library import Library

    def no_decoding(*args, **kwargs):
        raise AssertionError('an already indexed upload was sent to indexing')

    monkeypatch.setattr(Library, 'index', no_decoding)
    other_tab = open_page()
    other_tab.file_uploader(key='uploads').set_value([('again.mp4', sample_videos[1].read_bytes(), 'video/mp4')])
    at = click(other_tab, 'Add and index')  # no waiting: the answer is there on this very run
    assert not at.exception
    assert [s.value for s in at.success] == ['0 indexed, 1 already indexed, 0 failed']
    assert 'again.mp4: already indexed as pattern.mp4' in texts(at)
    assert sorted(p.name for p in uploads.iterdir()) == ['bars.mp4', 'pattern.mp4']  # no pile of copies


def test_delete_asks_for_that_video_only_and_never_deletes_a_second(indexed):
    first, second = (v.video_id for v in indexed.session_state['index_job']['videos'].values())
    at = indexed.button(key=f'ask-{first}').click().run()
    assert [b.key for b in at.button if b.label == 'Yes, delete'] == [f'delete-{first}']
    at = at.button(key=f'delete-{first}').click().run()
    assert not at.exception
    assert [b.label for b in at.button if b.label in ('Yes, delete', 'Cancel')] == []  # no confirmation left open
    assert [b.key for b in at.button if b.key and b.key.startswith('ask-')] == [f'ask-{second}']
    assert '1 video · ' in texts(at)

    # cancelling leaves the video
    at = at.button(key=f'ask-{second}').click().run()
    at = at.button(key=f'cancel-{second}').click().run()
    assert [b.key for b in at.button if b.key and b.key.startswith('ask-')] == [f'ask-{second}']


def test_other_tabs_stop_showing_a_deleted_video(indexed):
    at = search(indexed, 'colour bars')
    names = {Path(m.uri).name for m in at.session_state['results']}
    assert names == {'bars.mp4', 'pattern.mp4'}

    other_tab = open_page()
    victim = next(v for v in at.session_state['index_job']['videos'].values() if v.uri.endswith('bars.mp4'))
    other_tab = other_tab.button(key=f'ask-{victim.video_id}').click().run()
    other_tab.button(key=f'delete-{victim.video_id}').click().run()

    at = at.run()  # the next run of the first tab (the page checks the library every few seconds)
    assert {Path(m.uri).name for m in at.session_state['results']} == {'pattern.mp4'}
    assert 'left out: deleted from the library' in texts(at)
    assert all('bars.mp4' not in p for p in players(at))


def test_image_with_text_says_which_was_used(indexed, sample_videos, tmp_path):
    from tests.browser.helpers import first_frame_png

    image = first_frame_png(sample_videos[1], tmp_path)
    indexed.file_uploader(key='query_image').set_value(('frame.png', image.read_bytes(), 'image/png'))
    at = search(indexed, 'colour bars')
    assert [i.value for i in at.info][0].startswith('Searched by the image frame.png; the typed text was not used.')
    assert 'results (1–' in texts(at) and '“frame.png”' in texts(at)


def test_whole_videos_explain_their_ranking_and_long_queries_are_shortened(indexed):
    at = search(indexed, 'a very long description ' * 80, by='video')
    echo = next(c.value for c in at.caption if ' for “' in c.value)
    assert len(echo) < 120 and echo.endswith('…”')
    assert any('mean score over all their keyframes' in c.value for c in at.caption)
    assert sorted(Path(m.uri).name for m in at.session_state['results']) == ['bars.mp4', 'pattern.mp4']


def test_one_result_and_the_next_page(indexed):
    at = search(indexed, 'colour bars', top=1)
    assert any(c.value.startswith('1 result (1–1) for') for c in at.caption)
    first = at.session_state['results'][0]
    at = at.button(key='next').click().run()
    assert any(c.value.startswith('1 result (2–2) for') for c in at.caption)
    assert at.session_state['results'][0].model_dump(exclude={'id'}) != first.model_dump(exclude={'id'})
    at = at.button(key='previous').click().run()
    assert at.session_state['results'][0].model_dump(exclude={'id'}) == first.model_dump(exclude={'id'})


def test_the_best_moment_does_not_depend_on_how_many_results(indexed):
    moments = {}
    for top in (1, 2, 12):
        at = search(indexed, 'colour bars', top=top)
        for match in at.session_state['results']:
            moments.setdefault((match.video_id, top), (match.start, match.end))
    for video_id, top in list(moments):
        assert moments[video_id, top] == moments[video_id, 12]


def test_more_like_this_searches_by_that_keyframe(indexed):
    at = search(indexed, 'colour bars')
    card = at.session_state['results'][1]
    at = at.button(key='similar-1').click().run()
    assert not at.exception and not at.error
    best = at.session_state['results'][0]
    assert best.video_id == card.video_id and best.score > 0.999  # its own keyframe (cosine 1) first
    assert f'“{Path(card.uri).name} at ' in texts(at)


def test_search_errors_are_one_line(indexed):
    at = click(indexed, 'Search')  # nothing typed
    assert not at.exception
    assert len(at.error) == 1 and '\n' not in at.error[0].value

    at.file_uploader(key='query_image').set_value(('photo.png', b'not an image', 'image/png'))
    at = click(at, 'Search')
    assert len(at.error) == 1 and at.error[0].value.startswith('photo.png: not a readable image (UnidentifiedImageError')


def test_progress_bars_show_each_video_stage(page, uploads):
    first, second, third = (str(uploads / name) for name in ('a.mp4', 'b.mp4', 'c.mp4'))
    page.session_state['index_job'] = {
        'paths': [first, second, third], 'videos': {}, 'error': None, 'done': False,
        'progress': {(first, 'frames'): ('encode', 10, 10), (second, 'frames'): ('decode', 3, 12),
                     (second, 'speech'): ('speech', 30, 120)},
    }
    at = page.run()
    bars = [(bar.value, bar.proto.text) for bar in at.get('progress')]
    assert bars == [(100, 'a.mp4 · embedding keyframes 10/10'), (12, 'b.mp4 · decoding keyframes 3/12'),
                    (25, 'b.mp4 · recognising speech 30/120 s'), (0, 'c.mp4 · waiting')]
    assert at.button[[b.label for b in at.button].index('Add and index')].disabled
    assert any(i.value.startswith('Indexing your first videos') for i in at.info)


def test_served_beyond_this_machine_the_page_needs_a_password(argv):
    from page.access import hash_password

    address = config.get_option('server.address')
    config.set_option('server.address', '0.0.0.0')
    try:
        at = open_page()  # no password set: refuses to serve
        assert not at.exception and not at.tabs
        assert 'no password is set' in at.error[0].value

        at = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=120)
        at.secrets['password_hash'] = hash_password('correct horse')
        at = at.run()
        assert not at.tabs and at.text_input[0].label == 'Password'
        at.text_input[0].input('wrong')
        at = click(at, 'Sign in')
        assert [e.value for e in at.error] == ['Wrong password.'] and not at.tabs
        at.text_input[0].input('correct horse')
        at = click(at, 'Sign in')
        assert not at.error and len(at.tabs) == 3
    finally:
        config.set_option('server.address', address)


def test_missing_weights_is_a_message_not_a_traceback(monkeypatch, tmp_path):
    missing = tmp_path / 'weights' / 'ViT-B-32.pt'
    monkeypatch.setattr(sys, 'argv', ['app.py', '--flow', str(ROOT / 'flow.yml'), '--workspace', str(tmp_path / 'ws'),
                                      '--model', str(missing)])
    at = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and str(missing) in at.error[0].value
    assert not at.tabs  # the page stops there


def test_bad_options_are_a_message(monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['app.py', '--no-such-option'])
    at = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and '--no-such-option' in at.error[0].value


def test_spoken_words_are_shown_with_the_query_terms_highlighted():
    from library import highlight

    mark = lambda word: f'[{word}]'  # noqa: E731
    assert highlight('The chef slices the Onions', 'onions slices', str, mark) == 'The chef [slices] the [Onions]'
    assert highlight('我们去海边吧', '海边', str, mark) == '我们去[海边]吧'
    assert highlight('An onion, sliced. Slicing cakes.', 'onions slicing cake', str, mark) == \
        'An [onion], [sliced]. [Slicing] [cakes].'  # any ending, as the stemmed subtitle search matched them
    assert highlight('this island is', 'is', str, mark) == 'this island [is]'  # whole words, not parts
    assert highlight('a * b', 'a', lambda t: t.replace('*', '\\*'), mark) == 'a \\* b'  # one-letter words are not marked
    assert highlight('nothing here', '', str, mark) == 'nothing here'
