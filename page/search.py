"""The Search tab: a description, an image or a clip (where it comes from), the results below (page.results)."""
import streamlit as st

from executors.documents import SegmentDoc, VideoDoc
from executors.errors import VcedError
from library import VIDEO_EXTENSIONS, Library, query_file, read_image
from page.adding import indexing
from page.media_server import MediaServer
from page.resources import Loaded
from page.results import ask, play, results_ui

IMAGE_TYPES = ['png', 'jpg', 'jpeg', 'webp', 'bmp', 'gif']
VIDEO_TYPES = sorted(e.lstrip('.') for e in VIDEO_EXTENSIONS)
RANKINGS = {'segment': 'Moments', 'video': 'Whole videos'}


def search_ui(loaded: Loaded, media: MediaServer, videos: list[VideoDoc]) -> None:
    lib = loaded.library
    if not videos and indexing():
        st.info('Indexing your first videos (see **Add videos**): search here as soon as they are done.',
                icon=':material/hourglass_top:')
        return
    if not videos:
        st.info('Nothing is indexed yet. Add videos in the **Add videos** tab (or run '
                '`python flow.py index FOLDER`), then describe a moment here.', icon=':material/info:')
        return
    with st.form('search', border=False):
        text_col, top_col, by_col, go_col = st.columns([6, 1.2, 2.4, 1.2], vertical_alignment='bottom')
        text = text_col.text_input('Describe the moment', key='query', placeholder='a man rides a bike along the beach')
        top = top_col.number_input('Results', min_value=1, max_value=100, value=12, step=1)
        by = by_col.radio('Show', list(RANKINGS), format_func=RANKINGS.get, horizontal=True)
        searched = go_col.form_submit_button('Search', type='primary', icon=':material/search:', width='stretch')
        with st.expander('Search by image instead'):
            image = st.file_uploader('An image like the moment you want', type=IMAGE_TYPES, key='query_image')
        with st.expander('Search by video instead'):
            clip = st.file_uploader('A short clip (3 s or more): which of your videos it comes from, and where',
                                    type=VIDEO_TYPES, key='query_video')
    if not loaded.ready.is_set():
        st.caption('Loading the models: a search starts as soon as the text model is ready.')
    if loaded.notices:
        multilingual_notice_ui()
    elif lib.text_model == 'clip':
        st.caption('CLIP understands English best; other languages work too, with less reliable matches.')
    else:
        st.caption('Describe it in any language: queries that are not plain English go to the multilingual text model.')
    try:
        if searched:
            ask(_form_query(text, image, clip, int(top), by))
        if st.session_state.pop('pending', False):
            asked = st.session_state.asked
            text_only = not ('similar' in asked or asked.get('image') is not None or asked.get('video'))
            with st.spinner('Searching…' if (loaded.text_ready if text_only else loaded.ready).is_set()
                            else 'Loading the models, then searching…'):
                (loaded.text_ready if text_only else loaded.ready).wait()
                if loaded.error is not None:
                    st.rerun()  # the page says why
                st.session_state.results = _run(lib, st.session_state.asked)
            play(0)
    except VcedError as e:
        st.session_state.pop('results', None)
        st.error(str(e), icon=':material/error:')
        return
    results_ui(lib, media, {v.video_id for v in videos})


def multilingual_notice_ui() -> None:
    """Said once, in the Search tab: what is missing and what still works."""
    st.warning('The multilingual text model is not available on this machine (it is not in the weights folder and '
               'could not be downloaded), so descriptions that are not in English cannot be matched against what '
               'is seen. Still working: English descriptions, searching by image, and spoken words and subtitles '
               'in any language.', icon=':material/translate:')


def _form_query(text: str, image, clip, top: int, by: str) -> dict:
    """The search the form asks for; an attached clip wins over an image, an image over typed text, and the
    page says so."""
    query = {'text': text, 'image': None, 'top': top, 'by': by, 'offset': 0, 'label': text, 'note': ''}
    if clip is not None:
        query.update(text='', video=(clip.name, clip.getvalue()), by='segment', label=clip.name)
        unused = ' and '.join(n for n, given in (('image', image is not None), ('typed text', text.strip())) if given)
        if unused:
            query['note'] = (f'Searched for where the clip {clip.name} comes from; the {unused} was not used. '
                             'Remove the clip (under “Search by video instead”) to search by them.')
    elif image is not None:
        query.update(text='', image=read_image(image, image.name), label=image.name)
        if text.strip():
            query['note'] = (f'Searched by the image {image.name}; the typed text was not used. '
                             'Remove the image (under “Search by image instead”) to search by text.')
    return query


def _run(lib: Library, query: dict) -> list[SegmentDoc]:
    if query.get('video'):
        name, data = query['video']
        with query_file(name, data) as clip:
            return lib.locate(clip, top=query['top'], offset=query['offset'])
    if 'similar' in query:
        return lib.similar(*query['similar'], top=query['top'], offset=query['offset'])
    return lib.search(text=query['text'], image=query['image'], top=query['top'], by=query['by'], offset=query['offset'])
