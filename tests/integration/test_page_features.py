"""The page's rough edges a user notices (issue 29), driven by streamlit.testing's AppTest."""
import re
import threading
import time
from pathlib import Path

import streamlit as st
from streamlit import config
from streamlit.testing.v1 import AppTest

from executors.documents import SegmentDoc
from tests.integration.test_app import (ROOT, argv, click, index_uploads, indexed, open_page, page,  # noqa: F401
                                        search, texts, uploads)

SRT = '1\n00:00:01,000 --> 00:00:02,500\nThe chef slices the onions.\n\n2\n00:00:03,000 --> 00:00:04,000\nA cake.\n'


def test_a_spoken_only_card_has_a_picture_and_its_words_marked_at_any_ending(indexed):
    video = indexed.session_state['index_job']['videos']
    bars = next(v for v in video.values() if v.uri.endswith('bars.mp4'))
    said = SegmentDoc(video_id=bars.video_id, uri=bars.uri, start=1.0, end=2.5, timestamp=1.0, score=0.016,
                      source='speech', text='The chef slices the onions. A cake.')
    seen = SegmentDoc(video_id=bars.video_id, uri=bars.uri, start=0.0, end=1.0, timestamp=0.5, score=0.032,
                      source='visual', thumbnail='')
    indexed.session_state['asked'] = {'text': 'onion cakes', 'image': None, 'top': 12, 'by': 'segment', 'offset': 0,
                                      'label': 'onion cakes', 'note': ''}
    indexed.session_state['results'] = [seen, said]
    at = indexed.run()
    assert not at.exception
    assert sum('vced-spoken' in h.proto.body for h in at.html) == 2  # both cards without a keyframe get a picture
    marked = [h.proto.body for h in at.html if 'vced-said' in h.proto.body]
    assert marked and all('<mark>onions</mark>.' in m and '<mark>cake</mark>.' in m for m in marked)  # no 'cake .'
    assert '▰▰▰▱▱ fair match · said' in texts(at)  # half the best one's fused score


def test_the_query_image_is_shown(indexed, sample_videos, tmp_path):
    from tests.browser.helpers import first_frame_png

    image = first_frame_png(sample_videos[1], tmp_path)
    indexed.file_uploader(key='query_image').set_value(('frame.png', image.read_bytes(), 'image/png'))
    at = click(indexed, 'Search')
    assert [i.captions for i in at.image if 'Searched by frame.png' in i.captions] == [['Searched by frame.png']]


def test_the_library_has_thumbnails_a_search_and_a_sort(indexed):
    names = lambda at: [m.value.split('**')[1].replace('\\', '') for m in at.markdown  # noqa: E731
                        if m.value.startswith('**') and 'fps' in m.value]
    assert names(indexed) == ['pattern.mp4', 'bars.mp4']  # newest first
    assert len([i for i in indexed.image if i.value and not i.captions[0]]) >= 2  # a keyframe per video
    indexed.selectbox(key='library_sort').set_value('name')
    at = indexed.run()
    assert names(at) == ['bars.mp4', 'pattern.mp4']
    at.text_input(key='library_find').input('PATT')
    at = at.run()
    assert names(at) == ['pattern.mp4'] and '1 video of 2' in texts(at)


def test_subtitles_uploaded_with_their_video_are_indexed_and_counted(page, sample_videos, uploads):
    bars = sample_videos[0].read_bytes()
    at = index_uploads(page, [('cooking.mp4', bars), ('cooking.en.srt', SRT.encode()), ('lost.vtt', b'WEBVTT\n')])
    assert not at.exception
    assert sorted(p.name for p in uploads.iterdir()) == ['cooking.en.srt', 'cooking.mp4']
    assert re.search(r'cooking\.mp4: indexed, \d+ keyframes, 2 subtitle lines', texts(at))
    assert any(w.value.startswith('lost.vtt: no video of that name') for w in at.warning)
    assert '2 subtitle lines' in ' '.join(m.value for m in at.markdown if 'fps' in m.value)  # the Library says it too

    # the same video again, under its own name: told by that name, not the renamed copy's, and no copy left
    at = index_uploads(at, [('cooking.mp4', bars), ('cooking.srt', SRT.encode())])
    assert 'cooking.mp4: already indexed' in texts(at) and 'cooking-1' not in texts(at)
    assert sorted(p.name for p in uploads.iterdir()) == ['cooking.en.srt', 'cooking.mp4']


def test_the_search_box_shows_while_the_models_load(argv, indexed, monkeypatch):
    from library import Library

    started, release = threading.Event(), threading.Event()

    def slow_warm_up(self):
        started.set()
        release.wait(60)
        return []

    st.cache_resource.clear()  # the next pages open the Library anew, with these slow models
    monkeypatch.setattr(Library, 'warm_up', slow_warm_up)
    first = threading.Thread(target=open_page)  # the first visitor's run loads the models, once drawn
    first.start()
    try:
        assert started.wait(60)
        at = open_page()  # another visitor meanwhile: the whole page at once
        assert at.text_input(key='query') is not None and not at.exception and len(at.tabs) == 3
        assert any('Loading the models: a search starts' in c.value for c in at.caption)
        at = search(at, 'colour bars')  # the text tower is loaded: a text search runs now
        assert at.session_state['results'] and not at.exception
    finally:
        release.set()
        first.join(60)


def test_a_missing_multilingual_model_is_said_once_in_words(argv, indexed, monkeypatch):
    from library import Library

    monkeypatch.setattr(Library, 'warm_up', lambda self: ['multilingual: [Errno -2] Name or service not known. '
                                                         'Until then, ...'])
    st.cache_resource.clear()
    at = open_page()
    deadline = time.monotonic() + 30
    while not any('multilingual text model is not available' in w.value for w in at.warning):
        assert time.monotonic() < deadline
        time.sleep(0.2)
        at = at.run()
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and 'Errno' not in warnings[0] and 'Still working: English descriptions' in warnings[0]


def test_wrong_passwords_are_throttled_and_the_field_is_a_sign_in_one(argv, monkeypatch):
    from page import access
    from page.sessions import Throttle

    clock = [1000.0]
    monkeypatch.setattr(access, 'THROTTLE', Throttle(lambda: clock[0]))
    address = config.get_option('server.address')
    config.set_option('server.address', '0.0.0.0')
    try:
        at = AppTest.from_file(str(ROOT / 'app.py'), default_timeout=120)
        at.secrets['password_hash'] = access.hash_password('correct horse')
        at = at.run()
        assert at.text_input[0].proto.autocomplete == 'current-password'
        assert 'sign in' in at.title[0].value
        for _ in range(3):
            at.text_input[0].input('wrong')
            at = click(at, 'Sign in')
        at.text_input[0].input('correct horse')
        at = click(at, 'Sign in')  # even the right one waits now
        assert at.error[0].value.startswith('Too many wrong passwords: try again in') and not at.tabs
        clock[0] += 60
        at.text_input[0].input('correct horse')
        at = click(at, 'Sign in')
        assert not at.error and len(at.tabs) == 3
    finally:
        config.set_option('server.address', address)
