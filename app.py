"""VCED's web page: add videos, search them by a description or an image, play the moments found.

    streamlit run serve.py -- [--flow FILE] [--workspace DIR] [--model NAME_OR_PATH] [--backend local|milvus] [--uri URI] ...

UI only: the library layer (one Library shared by every session of the server) does the work, and
media_server plays the files to the browser by range requests. The parts are in page/: access (the
password), search and results, adding (uploads), library_tab, resources (what sessions share).
"""
import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

from executors.documents import VideoDoc
from executors.errors import VcedError
from library import format_time, plural
from library.options import add_options, flow_path, overrides
from page import access as page_access
from page.adding import add_ui
from page.library_tab import library_ui
from page.resources import Loaded, failed, load_library, media_server
from page.search import search_ui

WATCH_SECONDS = 5  # how often an open page checks whether another page or the CLI changed the library
USAGE = ('streamlit run serve.py -- [--flow FILE] [--workspace DIR] [--model NAME_OR_PATH] [--text-model clip|multilingual|auto] '
         '[--asr NAME|off] [--ocr auto|off|PATH] [--backend local|milvus] [--uri URI] [--videos DIR] [--media-port N] '
         '[--media-url URL]')


def options(argv: list[str]) -> argparse.Namespace:
    """The options given after `--` on the streamlit command line: the CLI's library options
    (library/options.py) and the page's own."""
    parser = argparse.ArgumentParser(usage=USAGE)
    add_options(parser, 'flow', 'workspace', 'model', 'text_model', 'asr', 'ocr', 'backend', 'uri')
    parser.add_argument('--videos', default='data/videos', help='where uploaded videos are saved (default: data/videos)')
    parser.add_argument('--media-port', type=int, default=0, help='port that plays videos to browsers (default: any free one)')
    parser.add_argument('--media-url', default='', help="the media server's address as browsers reach it "
                                                       '(behind a proxy; default: http://<the page\'s host>:<media port>)')
    args = parser.parse_args(argv)
    args.flow, args.overrides = flow_path(args), overrides(args)
    return args


def main() -> None:
    st.set_page_config(page_title='VCED · video search', page_icon=':material/movie:', layout='wide')
    try:
        args = options(sys.argv[1:])
    except SystemExit:
        st.error(f'bad options after `--`: {" ".join(sys.argv[1:])}; usage: `{USAGE}`')
        st.stop()
    address = st.get_option('server.address')
    page_access.gate_ui(address)
    try:
        loaded = load_library(args.flow, tuple(sorted(args.overrides.items())))
        media = media_server(address or '', args.media_port, page_access.password_mode(address))
        problem = failed(loaded)
        videos = [] if problem else loaded.library.videos()
    except (VcedError, OSError) as e:
        problem = str(e)
    if problem:
        st.error(problem, icon=':material/error:')
        st.stop()
    st.session_state.media_base = args.media_url.rstrip('/') or _media_base(media.port)
    page_access.cookie_ui(st.session_state.media_base)

    st.session_state.warm = loaded.ready.is_set()  # as this run draws it
    header_ui(videos)
    search_tab, add_tab, library_tab = st.tabs(['Search', 'Add videos', 'Library'], key='tab')
    with search_tab:
        search_ui(loaded, media, videos)
    with add_tab:
        add_ui(loaded.library, Path(args.videos), loaded.ready)
    with library_tab:
        library_ui(loaded.library, media, videos)
    watch_ui(loaded, _version(videos))  # last: a redraw it asks for never cuts a click's run short
    if not loaded.ready.is_set():
        with st.spinner('Loading the models…', show_time=True):
            if loaded.warm():
                st.rerun()  # with what loading found (a notice, or why the models are missing)


def header_ui(videos: list[VideoDoc]) -> None:
    title, stats = st.columns([3, 1], vertical_alignment='bottom')
    title.title(':material/movie: VCED', anchor=False)
    title.caption('Find the moments in your videos that match a description.')
    if videos:
        stats.caption(f'{plural(len(videos), "video")} · {format_time(sum(v.duration for v in videos))} · '
                      f'{plural(sum(v.frame_count for v in videos), "keyframe")}', text_alignment='right')


@st.fragment(run_every=WATCH_SECONDS)
def watch_ui(loaded: Loaded, shown: tuple) -> None:
    """Redraw the page when the library changed since it was drawn (another page, or the CLI), or when
    the models finished loading in the background (a notice, or why they could not)."""
    if _version(loaded.library.videos()) != shown or st.session_state.get('warm') != loaded.ready.is_set():
        st.rerun()


def _media_base(port: int) -> str:
    """http://<the host this browser reached the page by>:<port>."""
    host = urlsplit(st.context.url or '').hostname or '127.0.0.1'
    return f'http://{f"[{host}]" if ":" in host else host}:{port}'


def _version(videos: list[VideoDoc]) -> tuple:
    return tuple(v.video_id for v in videos)


if __name__ == '__main__':
    main()
