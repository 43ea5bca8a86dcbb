"""VCED's web page: add videos, search them by a description or an image, play the moments found.

    streamlit run app.py -- [--flow FILE] [--workspace DIR] [--model NAME_OR_PATH] [--videos DIR] [--media-port N]

UI only: the library layer (one Library shared by every session of the server) does the work, and
media_server plays the files to the browser by range requests.
"""
import argparse
import html
import sys
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

from page import access as page_access
from executors.documents import SCREEN, SegmentDoc, VideoDoc
from executors.errors import VcedError
from library import Library, format_time, highlight, local_time, plural, read_image, shorten, time_range
from page.media_server import MediaServer
from page.adding import add_ui, escape_markdown as _markdown, indexing

IMAGE_TYPES = ['png', 'jpg', 'jpeg', 'webp', 'bmp', 'gif']
RANKINGS = {'segment': 'Moments', 'video': 'Whole videos'}
CARDS_PER_ROW = 4
WATCH_SECONDS = 5  # how often an open page checks whether another page or the CLI changed the library
USAGE = ('streamlit run app.py -- [--flow FILE] [--workspace DIR] [--model NAME_OR_PATH] [--videos DIR] '
         '[--media-port N] [--media-url URL]')


def options(argv: list[str]) -> argparse.Namespace:
    """The options given after `--` on the streamlit command line."""
    parser = argparse.ArgumentParser(usage=USAGE)
    parser.add_argument('--flow', default='flow.yml', help='the flow file (default: flow.yml)')
    parser.add_argument('--workspace', help='where the index lives (default: set in flow.yml)')
    parser.add_argument('--model', help='CLIP model name or checkpoint path (default: set in flow.yml)')
    parser.add_argument('--text-model', dest='text_model', help='clip | multilingual | auto (default: set in flow.yml)')
    parser.add_argument('--asr', help='speech recognition model, or off (default: set in flow.yml)')
    parser.add_argument('--ocr', help='on-screen text: auto, off or a folder of OCR models (default: set in flow.yml)')
    parser.add_argument('--videos', default='data/videos', help='where uploaded videos are saved (default: data/videos)')
    parser.add_argument('--media-port', type=int, default=0, help='port that plays videos to browsers (default: any free one)')
    parser.add_argument('--media-url', default='', help="the media server's address as browsers reach it "
                                                       '(behind a proxy; default: http://<the page\'s host>:<media port>)')
    return parser.parse_args(argv)


@st.cache_resource(show_spinner='Loading the models…', show_time=True, on_release=Library.close)
def load_library(flow: str, workspace: str | None, model: str | None, text_model: str | None,
                 asr: str | None, ocr: str | None = None) -> Library:
    """The Library every session shares, its models loaded now so that missing weights show at start-up."""
    library = Library(flow, workspace=workspace, model=model, text_model=text_model, asr=asr, ocr=ocr)
    try:
        library.warm_up()
    except BaseException:
        library.close()
        raise
    return library


@st.cache_resource(on_release=MediaServer.close)
def media_server(host: str, port: int) -> MediaServer:
    """The one media server of this Streamlit server, on the address the page listens on."""
    try:
        return MediaServer(host, port)
    except OSError as e:
        raise OSError(f'cannot play videos on {host or "every address"}, port {port} ({e.strerror}): '
                      'choose another with --media-port') from e


# ----------------------------------------------------------------------------- the page


def main() -> None:
    st.set_page_config(page_title='VCED · video search', page_icon=':material/movie:', layout='wide')
    try:
        args = options(sys.argv[1:])
    except SystemExit:
        st.error(f'bad options after `--`: {" ".join(sys.argv[1:])}; usage: `{USAGE}`')
        st.stop()
    page_access.gate_ui(st.get_option('server.address'))
    try:
        lib = load_library(args.flow, args.workspace, args.model, args.text_model, args.asr, args.ocr)
        media = media_server(st.get_option('server.address') or '', args.media_port)
        videos = lib.videos()
    except (VcedError, OSError) as e:
        st.error(str(e), icon=':material/error:')
        st.stop()
    st.session_state.media_base = args.media_url.rstrip('/') or _media_base(media.port)
    for notice in lib.notices:
        st.warning(notice, icon=':material/translate:')

    header_ui(videos)
    watch_ui(lib, _version(videos))
    search_tab, add_tab, library_tab = st.tabs(['Search', 'Add videos', 'Library'], key='tab')
    with search_tab:
        search_ui(lib, media, videos)
    with add_tab:
        add_ui(lib, Path(args.videos))
    with library_tab:
        library_ui(lib, media, videos)


def header_ui(videos: list[VideoDoc]) -> None:
    title, stats = st.columns([3, 1], vertical_alignment='bottom')
    title.title(':material/movie: VCED', anchor=False)
    title.caption('Find the moments in your videos that match a description.')
    if videos:
        stats.caption(f'{plural(len(videos), "video")} · {format_time(sum(v.duration for v in videos))} · '
                      f'{plural(sum(v.frame_count for v in videos), "keyframe")}', text_alignment='right')


@st.fragment(run_every=WATCH_SECONDS)
def watch_ui(lib: Library, shown: tuple) -> None:
    """Redraw the page when the library changed since it was drawn (another page, or the CLI)."""
    if _version(lib.videos()) != shown:
        st.rerun()


def search_ui(lib: Library, media: MediaServer, videos: list[VideoDoc]) -> None:
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
    if lib.text_model == 'clip':
        st.caption('CLIP understands English best; other languages work too, with less reliable matches.')
    else:
        st.caption('Describe it in any language: queries that are not plain English go to the multilingual text model.')
    try:
        if searched:
            _ask(_form_query(text, image, int(top), by))
        if st.session_state.pop('pending', False):
            with st.spinner('Searching…'):
                st.session_state.results = _run(lib, st.session_state.asked)
            st.session_state.playing = 0
    except VcedError as e:
        st.session_state.pop('results', None)
        st.error(str(e), icon=':material/error:')
        return
    results_ui(lib, media, {v.video_id for v in videos})


def results_ui(lib: Library, media: MediaServer, live: set[str]) -> None:
    query, matches = st.session_state.get('asked'), st.session_state.get('results')
    if matches is None:
        return
    if query.get('note'):
        st.info(query['note'], icon=':material/image_search:')
    gone = [m for m in matches if m.video_id not in live]
    if gone:  # deleted meanwhile, in this page or another
        matches = st.session_state.results = [m for m in matches if m.video_id in live]
        st.caption(f'{plural(len(gone), "result")} left out: deleted from the library.')
    if not matches:
        st.info('No matches. Try describing what is visible in other words.' if not query['offset'] else 'No more results.')
        paging_ui(query, 0)
        return
    first = query['offset'] + 1
    st.caption(f'{plural(len(matches), "result")} ({first}–{first + len(matches) - 1}) for “{shorten(query["label"], 80)}”')
    if query['by'] == 'video':
        st.caption('Whole videos are ranked by their mean score over all their keyframes, so a video that matches '
                   'throughout ranks above one with a single close moment (even the video an image was taken from); '
                   'choose **Moments** to rank single moments.')
    playing = min(st.session_state.get('playing', 0), len(matches) - 1)
    player_ui(lib, media, matches[playing])
    for row in range(0, len(matches), CARDS_PER_ROW):
        for column, rank in zip(st.columns(CARDS_PER_ROW), range(row, min(row + CARDS_PER_ROW, len(matches)))):
            with column:
                card_ui(rank, matches[rank], rank == playing, query['offset'])
    paging_ui(query, len(matches))


def player_ui(lib: Library, media: MediaServer, match: SegmentDoc) -> None:
    """The original file, streamed by the media server, playing (muted: what browsers allow) from the start."""
    video, info = st.container(border=True).columns([1, 1])
    with video:
        if Path(match.uri).is_file():
            url = f'{st.session_state.media_base}{media.publish(match.uri)}#t={match.start:.2f},{match.end:.2f}'
            st.html(f'<video src="{html.escape(url)}" controls autoplay muted playsinline preload="auto" '
                    'style="width:100%;max-height:60vh;background:#000;border-radius:.5rem"></video>')
            st.caption('Starts muted (browsers only autoplay silent video): unmute in the player.')
        else:
            st.warning(f'{match.uri} is no longer there: delete it in the Library tab and add it again.')
    with info:
        st.subheader(_markdown(Path(match.uri).name), anchor=False, help=match.uri)
        st.markdown(f'**{time_range(match.start, match.end)}** · score {match.score:.3f}')
        if match.text:
            st.markdown(f'“{_said(match, 400)}”')
        st.download_button('Download this segment', data=partial(lib.cut, match),
                           file_name=f'{Path(match.uri).stem} {time_range(match.start, match.end).replace(":", ".")}.mp4',
                           mime='video/mp4', on_click='ignore', icon=':material/download:',
                           disabled=not Path(match.uri).is_file())


def card_ui(rank: int, match: SegmentDoc, playing: bool, offset: int) -> None:
    with st.container(border=True):
        if match.thumbnail and Path(match.thumbnail).is_file():
            st.image(match.thumbnail, width='stretch')
        st.markdown(f'**{offset + rank + 1}. {_markdown(Path(match.uri).name)}**')
        st.caption(f'{time_range(match.start, match.end)} · score {match.score:.3f}')
        if match.source == SCREEN:
            st.badge('on screen', icon=':material/subtitles:', color='blue')
            st.markdown(f'“{_said(match, 160)}”')
        elif match.source != 'visual':
            st.badge('seen and said' if match.source == 'both' else 'said', icon=':material/record_voice_over:',
                     color='violet')
            st.markdown(f'“{_said(match, 160)}”')
        st.button('Playing' if playing else 'Play', key=f'play-{rank}', icon=':material/play_arrow:', width='stretch',
                  disabled=playing, on_click=_play, args=(rank,))
        st.button('More like this', key=f'similar-{rank}', icon=':material/image_search:', width='stretch',
                  on_click=_more_like, args=(match,), help='Moments that look like this keyframe')


def paging_ui(query: dict, shown: int) -> None:
    previous, _, following = st.columns([1, 4, 1])
    if query['offset']:
        previous.button('Previous', key='previous', icon=':material/chevron_left:', width='stretch',
                        on_click=_ask, args=({**query, 'offset': max(query['offset'] - query['top'], 0)},))
    if shown == query['top']:
        following.button('More results', key='next', icon=':material/chevron_right:', width='stretch',
                         on_click=_ask, args=({**query, 'offset': query['offset'] + query['top']},))


def library_ui(lib: Library, media: MediaServer, videos: list[VideoDoc]) -> None:
    if not videos:
        st.info('The library is empty. Add videos in the **Add videos** tab.', icon=':material/info:')
        return
    widths = [6, 1.4, 1.4, 2.2, 1.4]
    for column, label in zip(st.columns(widths), ['Video', 'Duration', 'Keyframes', 'Added', '']):
        column.caption(label)
    confirming = st.session_state.get('confirm_delete')
    for video in videos:
        name, duration, keyframes, added, delete = st.columns(widths, vertical_alignment='center')
        name.markdown(f'**{_markdown(Path(video.uri).name)}**  \n:gray[{video.width}×{video.height} · {video.fps:.3g} fps]',
                      help=video.uri)
        duration.write(format_time(video.duration))
        keyframes.write(str(video.frame_count))
        added.write(local_time(video.added))
        if confirming != video.video_id:
            delete.button('Delete', key=f'ask-{video.video_id}', icon=':material/delete:',
                          on_click=_set, args=('confirm_delete', video.video_id))
            continue
        with st.container(border=True):  # the confirmation belongs to this video only
            st.markdown(f'Remove **{_markdown(Path(video.uri).name)}** from the index? The file stays on disk.')
            yes, no, _ = st.columns([1, 1, 4])
            yes.button('Yes, delete', key=f'delete-{video.video_id}', type='primary',
                       on_click=delete_video, args=(lib, media, video))
            no.button('Cancel', key=f'cancel-{video.video_id}', on_click=_set, args=('confirm_delete', None))


def delete_video(lib: Library, media: MediaServer, video: VideoDoc) -> None:
    if st.session_state.pop('confirm_delete', None) != video.video_id:
        return  # a stale click: only the video being confirmed is ever deleted
    try:
        lib.delete(video.video_id)
    except VcedError as e:
        st.error(str(e), icon=':material/error:')
        return
    media.withdraw(video.uri)
    st.toast(f'Deleted {Path(video.uri).name} from the index')


# ----------------------------------------------------------------------------- helpers


def _form_query(text: str, image, top: int, by: str) -> dict:
    """The search the form asks for; an attached image wins over typed text, and the page says so."""
    query = {'text': text, 'image': None, 'top': top, 'by': by, 'offset': 0, 'label': text, 'note': ''}
    if image is not None:
        query.update(text='', image=read_image(image, image.name), label=image.name)
        if text.strip():
            query['note'] = (f'Searched by the image {image.name}; the typed text was not used. '
                             'Remove the image (under “Search by image instead”) to search by text.')
    return query


def _more_like(match: SegmentDoc) -> None:
    _ask({'similar': (match.video_id, match.timestamp), 'top': st.session_state.asked['top'], 'by': 'segment',
          'offset': 0, 'label': f'{Path(match.uri).name} at {format_time(match.timestamp)}', 'note': ''})


def _ask(query: dict) -> None:
    st.session_state.asked, st.session_state.pending = query, True


def _run(lib: Library, query: dict) -> list[SegmentDoc]:
    if 'similar' in query:
        return lib.similar(*query['similar'], top=query['top'], offset=query['offset'])
    return lib.search(text=query['text'], image=query['image'], top=query['top'], by=query['by'], offset=query['offset'])


def _media_base(port: int) -> str:
    """http://<the host this browser reached the page by>:<port>."""
    host = urlsplit(st.context.url or '').hostname or '127.0.0.1'
    return f'http://{f"[{host}]" if ":" in host else host}:{port}'


def _version(videos: list[VideoDoc]) -> tuple:
    return tuple(v.video_id for v in videos)


def _said(match: SegmentDoc, limit: int) -> str:
    """The words a spoken result matched, the query's words highlighted."""
    query = st.session_state.get('asked', {}).get('text', '')
    return highlight(shorten(match.text or '', limit), query, _markdown, lambda word: f':orange-background[{word}]')


def _play(rank: int) -> None:
    st.session_state.playing = rank


def _set(key: str, value) -> None:
    st.session_state[key] = value


if __name__ == '__main__':
    main()
