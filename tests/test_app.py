"""The Streamlit page, driven by streamlit.testing's AppTest with the tiny CLIP checkpoint."""
import re
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
TIME_RANGE = re.compile(r'^\d\d:\d\d–\d\d:\d\d · score -?\d\.\d{3}$')


@pytest.fixture
def uploads(tmp_path) -> Path:
    return tmp_path / 'uploads'


@pytest.fixture
def page(monkeypatch, flow_args, uploads):
    """The page at start-up on a fresh workspace (options as given after `streamlit run app.py --`)."""
    monkeypatch.setattr(sys, 'argv', ['app.py', *flow_args, '--videos', str(uploads)])
    at = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=120)
    yield at.run()
    st.cache_resource.clear()  # closes the Flow (on_release), releasing the workspace


def click(at, label: str) -> AppTest:
    """Click the button labelled `label` (key-less form buttons) and rerun."""
    return at.button[[b.label for b in at.button].index(label)].click().run()


def index_uploads(at, files: list[tuple[str, bytes]]) -> AppTest:
    """Upload `files` in the Add videos tab, submit, and rerun until the summary shows."""
    at.file_uploader(key='uploads').set_value([(name, data, 'video/mp4') for name, data in files])
    click(at, 'Add and index')
    deadline = time.monotonic() + 120
    while not at.session_state['index_job']['done'] and time.monotonic() < deadline:
        time.sleep(0.2)
    return at.run()


def test_empty_index_explains_what_to_do(page):
    assert not page.exception
    infos = [i.value for i in page.info]
    assert any('Nothing is indexed yet' in text and 'Add videos' in text for text in infos)
    assert any('library is empty' in text for text in infos)


def test_upload_index_search_play_delete(page, sample_videos, uploads):
    bars, pattern, _ = sample_videos
    files = [('plage été 東京.mp4', bars.read_bytes()), ('../../pattern.mp4', pattern.read_bytes()),
             ('notes.mp4', b'not a video')]
    at = index_uploads(page, files)
    assert not at.exception
    assert [s.value for s in [*at.success, *at.warning]] == ['2 indexed · 0 already indexed · 1 failed']
    assert len(at.error) == 1 and at.error[0].value.startswith('notes.mp4: ')
    assert sorted(p.name for p in uploads.iterdir()) == ['pattern.mp4', 'plage été 東京.mp4']  # the failed one is gone

    # the same video again: nothing new, and its duplicate upload is not kept
    at = index_uploads(at, [('again.mp4', pattern.read_bytes())])
    assert [s.value for s in at.success] == ['0 indexed · 1 already indexed · 0 failed']
    assert sorted(p.name for p in uploads.iterdir()) == ['pattern.mp4', 'plage été 東京.mp4']

    # search, in any language: cards with a name, a time range and a score; the best one is open in the player
    at.text_input(key='query').input('barres de couleur, テストカード')
    click(at, 'Search')
    assert not at.exception and not at.error
    ranges = [c.value for c in at.caption if TIME_RANGE.match(c.value)]
    assert len(ranges) >= 2
    assert len(at.get('video')) == 1
    assert [b.proto.label for b in at.get('download_button')] == ['Download this segment']
    assert at.button(key='play-0').label == 'Playing' and at.button(key='play-0').disabled

    # whole videos: one card per video
    at.radio[0].set_value('video')
    click(at, 'Search')
    assert sorted(Path(m.uri).name for m in at.session_state['results']) == ['pattern.mp4', 'plage été 東京.mp4']
    at.radio[0].set_value('segment')
    click(at, 'Search')

    # opening another card plays that one
    second = at.session_state['results'][1]
    at.button(key='play-1').click().run()
    assert at.session_state['playing'] == 1 and at.button(key='play-1').label == 'Playing'
    assert [h.value for h in at.subheader][0].replace('\\', '') == Path(second.uri).name

    # the library lists both videos; deleting one (after confirming) removes it and the stale results
    library = ' '.join(m.value for m in at.markdown).replace('\\', '')
    assert 'plage été 東京.mp4' in library and 'pattern.mp4' in library
    video_id = next(v.video_id for v in at.session_state['index_job']['videos'].values())
    at.button(key=f'delete-{video_id}').click().run()
    assert not at.exception
    assert 'results' not in at.session_state
    assert len([b for b in at.button if b.key and b.key.startswith('delete-')]) == 1


def test_search_errors_are_one_line(page, sample_videos):
    at = index_uploads(page, [('bars.mp4', sample_videos[0].read_bytes())])
    click(at, 'Search')  # nothing typed
    assert not at.exception
    assert len(at.error) == 1 and '\n' not in at.error[0].value

    at.file_uploader(key='query_image').set_value(('photo.png', b'not an image', 'image/png'))
    click(at, 'Search')
    assert [e.value for e in at.error] == ['photo.png: not a readable image (UnidentifiedImageError)']


def test_progress_bars_show_each_video_stage(page, uploads):
    first, second, third = (str(uploads / name) for name in ('a.mp4', 'b.mp4', 'c.mp4'))
    page.session_state['index_job'] = {
        'paths': [first, second, third], 'videos': {}, 'error': None, 'done': False,
        'progress': {first: ('encode', 10, 10), second: ('decode', 3, 12)},
    }
    at = page.run()
    bars = [(bar.value, bar.proto.text) for bar in at.get('progress')]
    assert bars == [(100, 'a.mp4 · embedding keyframes 10/10'), (12, 'b.mp4 · decoding keyframes 3/12'),
                    (0, 'c.mp4 · waiting')]
    assert at.button[[b.label for b in at.button].index('Add and index')].disabled
    assert any(i.value.startswith('Indexing your first videos') for i in at.info)


def test_progress_of_a_real_job_reaches_every_video(flow_overrides, sample_videos, uploads):
    from app import start_indexing
    from flow import Flow, save_upload

    paths = [save_upload(v.name, v.read_bytes(), uploads) for v in sample_videos[:2]]
    with Flow(ROOT / 'flow.yml', **flow_overrides) as flow:
        job = start_indexing(flow, paths)
        deadline = time.monotonic() + 120
        while not job['done'] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert job['error'] is None
    assert [job['videos'][p].status for p in job['paths']] == ['indexed', 'indexed']
    for path in job['paths']:
        stage, done, total = job['progress'][path]
        assert stage == 'encode' and done == total == len(job['videos'][path].frames)


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
