"""VCED's web page: add videos, search them by a description or an image, play the moments found.

    streamlit run app.py -- [--flow FILE] [--workspace DIR] [--model NAME_OR_PATH] [--videos DIR]

UI only: the Flow (shared by every session of the server) and flow.py's helpers do the work.
"""
import argparse
import math
import os
import re
import sys
import threading
from collections import Counter
from datetime import datetime
from functools import partial
from pathlib import Path

import streamlit as st

from executors.documents import DocList, QueryDoc, SegmentDoc, VideoDoc
from executors.errors import VcedError
from executors.media import cut_segment
from flow import VIDEO_EXTENSIONS, Flow, format_time, index_videos, read_image, save_upload, search

IMAGE_TYPES = ['png', 'jpg', 'jpeg', 'webp', 'bmp', 'gif']
RANKINGS = {'segment': 'Moments', 'video': 'Whole videos'}
CARDS_PER_ROW = 4
USAGE = 'streamlit run app.py -- [--flow FILE] [--workspace DIR] [--model NAME_OR_PATH] [--videos DIR]'


def options(argv: list[str]) -> argparse.Namespace:
    """The options given after `--` on the streamlit command line."""
    parser = argparse.ArgumentParser(usage=USAGE)
    parser.add_argument('--flow', default='flow.yml', help='the flow file (default: flow.yml)')
    parser.add_argument('--workspace', help='where the index lives (default: set in flow.yml)')
    parser.add_argument('--model', help='CLIP model name or checkpoint path (default: set in flow.yml)')
    parser.add_argument('--videos', default='data/videos', help='where uploaded videos are saved (default: data/videos)')
    return parser.parse_args(argv)


@st.cache_resource(show_spinner='Loading the CLIP model…', show_time=True, on_release=Flow.close)
def load_flow(path: str, workspace: str | None, model: str | None) -> Flow:
    """The Flow every session shares, with CLIP loaded now so that missing weights show at start-up."""
    flow = Flow(path, workspace=workspace, model=model)
    try:
        flow.post('/encode', DocList[QueryDoc]([QueryDoc(text='a video')]))
    except BaseException:
        flow.close()
        raise
    return flow


def start_indexing(flow: Flow, paths: list[Path]) -> dict:
    """Index `paths` in a background thread; the page polls the returned job while searches go on."""
    job = {'paths': [os.path.realpath(p) for p in paths], 'progress': {}, 'videos': {}, 'error': None, 'done': False}

    def progress(video: VideoDoc, stage: str, done: int, total: int) -> None:
        job['progress'][os.path.realpath(video.uri)] = (stage, done, total)

    def run() -> None:
        try:
            for video in index_videos(flow, job['paths'], progress):
                path = os.path.realpath(video.uri)
                if video.status == 'failed' or (video.status == 'already indexed' and not _in_library(flow, path)):
                    Path(path).unlink(missing_ok=True)  # this upload's copy: unreadable, or a duplicate
                job['videos'][path] = video
        except Exception as e:  # shown on the page by summary_ui
            job['error'] = e
        finally:
            job['done'] = True

    threading.Thread(target=run, name='vced-index', daemon=True).start()
    return job


def _in_library(flow: Flow, path: str) -> bool:
    return any(os.path.realpath(v.uri) == path for v in flow.post('/list'))


# ----------------------------------------------------------------------------- the page


def main() -> None:
    st.set_page_config(page_title='VCED · video search', page_icon=':material/movie:', layout='wide')
    try:
        args = options(sys.argv[1:])
    except SystemExit:
        st.error(f'bad options after `--`: {" ".join(sys.argv[1:])}; usage: `{USAGE}`')
        st.stop()
    try:
        flow = load_flow(args.flow, args.workspace, args.model)
        videos = flow.post('/list')
    except VcedError as e:
        st.error(str(e), icon=':material/error:')
        st.stop()

    header_ui(videos)
    search_tab, add_tab, library_tab = st.tabs(['Search', 'Add videos', 'Library'], key='tab')
    with search_tab:
        search_ui(flow, videos)
    with add_tab:
        add_ui(flow, Path(args.videos))
    with library_tab:
        library_ui(flow, videos)


def header_ui(videos: DocList[VideoDoc]) -> None:
    title, stats = st.columns([3, 1], vertical_alignment='bottom')
    title.title(':material/movie: VCED', anchor=False)
    title.caption('Find the moments in your videos that match a description.')
    if videos:
        stats.caption(f'{len(videos)} videos · {format_time(sum(v.duration for v in videos))} · '
                      f'{sum(v.frame_count for v in videos)} keyframes', text_alignment='right')


def search_ui(flow: Flow, videos: DocList[VideoDoc]) -> None:
    if not videos and _indexing():
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
    st.caption('CLIP understands English best; other languages work too, with less reliable matches.')
    if searched:
        try:
            with st.spinner('Searching…'):
                query_image = read_image(image, image.name) if image is not None else None
                st.session_state.results = search(flow, text=text, image=query_image, top=int(top), by=by)
                st.session_state.results_for = image.name if image is not None else text
            st.session_state.playing = 0
        except VcedError as e:
            st.session_state.pop('results', None)
            st.error(str(e), icon=':material/error:')
            return
    results_ui(st.session_state.get('results'), st.session_state.get('results_for', ''))


def results_ui(matches: DocList[SegmentDoc] | None, query: str) -> None:
    if matches is None:
        return
    if not matches:
        st.info('No matches. Try describing what is visible in other words.')
        return
    st.caption(f'{len(matches)} results for “{query}”')
    playing = min(st.session_state.get('playing', 0), len(matches) - 1)
    player_ui(matches[playing])
    for row in range(0, len(matches), CARDS_PER_ROW):
        for column, rank in zip(st.columns(CARDS_PER_ROW), range(row, min(row + CARDS_PER_ROW, len(matches)))):
            with column:
                card_ui(rank, matches[rank], rank == playing)


def player_ui(match: SegmentDoc) -> None:
    """The original file, played from the segment's start to its end."""
    video, info = st.container(border=True).columns([1, 1])
    with video:
        if Path(match.uri).is_file():
            st.video(match.uri, start_time=int(match.start), end_time=math.ceil(match.end))
        else:
            st.warning(f'{match.uri} is no longer there: delete it in the Library tab and add it again.')
    with info:
        st.subheader(_markdown(Path(match.uri).name), anchor=False, help=match.uri)
        st.markdown(f'**{time_range(match)}** · score {match.score:.3f}')
        st.download_button('Download this segment', data=partial(cut_segment, match.uri, match.start, match.end),
                           file_name=f'{Path(match.uri).stem} {time_range(match).replace(":", ".")}.mp4',
                           mime='video/mp4', on_click='ignore', icon=':material/download:',
                           disabled=not Path(match.uri).is_file())


def card_ui(rank: int, match: SegmentDoc, playing: bool) -> None:
    with st.container(border=True):
        if match.thumbnail and Path(match.thumbnail).is_file():
            st.image(match.thumbnail, width='stretch')
        st.markdown(f'**{_markdown(Path(match.uri).name)}**')
        st.caption(f'{time_range(match)} · score {match.score:.3f}')
        st.button('Playing' if playing else 'Play', key=f'play-{rank}', icon=':material/play_arrow:', width='stretch',
                  disabled=playing, on_click=_play, args=(rank,))


def add_ui(flow: Flow, folder: Path) -> None:
    job = st.session_state.get('index_job')
    running = _indexing()
    with st.form('add', clear_on_submit=True, border=False):
        files = st.file_uploader('Videos to add', type=sorted(e[1:] for e in VIDEO_EXTENSIONS),
                                 accept_multiple_files=True, key='uploads')
        st.caption(f'Saved in `{folder}`, then indexed here; searching keeps working meanwhile.')
        add = st.form_submit_button('Add and index', type='primary', icon=':material/upload:', disabled=running)
    if add and not files:
        st.warning('Choose one or more video files first.')
    elif add:
        try:
            paths = [save_upload(f.name, f, folder) for f in files]
        except VcedError as e:
            st.error(str(e), icon=':material/error:')
            return
        job = st.session_state.index_job = start_indexing(flow, paths)
        running = True
    if running:
        progress_ui()
    elif job is not None:
        summary_ui(job)


@st.fragment(run_every=0.5)
def progress_ui() -> None:
    """One bar per video (keyframes decoded, then embedded), redrawn until the job is done."""
    job = st.session_state.index_job
    for path in job['paths']:
        video = job['videos'].get(path)
        stage, done, total = job['progress'].get(path, ('waiting', 0, 0))
        if video is not None:
            fraction, what = 1.0, video.status
        elif total:
            done = min(done, total)
            fraction = (done + (total if stage == 'encode' else 0)) / (2 * total)
            what = f"{'decoding' if stage == 'decode' else 'embedding'} keyframes {done}/{total}"
        else:
            fraction, what = 0.0, 'waiting'
        st.progress(fraction, text=f'{Path(path).name} · {what}')
    if job['done']:
        st.rerun()  # the whole page: the library and the search see the new videos


def summary_ui(job: dict) -> None:
    videos = list(job['videos'].values())
    counts = Counter(v.status for v in videos)
    line = f"{counts['indexed']} indexed · {counts['already indexed']} already indexed · {counts['failed']} failed"
    (st.warning if counts['failed'] or job['error'] else st.success)(line)
    for video in videos:
        if video.status == 'failed':
            st.error(video.error, icon=':material/error:')
        else:
            st.markdown(f'- {_markdown(Path(video.uri).name)}: {video.status}'
                        + (f', {len(video.frames)} keyframes' if video.status == 'indexed' else ''))
    if isinstance(job['error'], VcedError):
        st.error(str(job['error']), icon=':material/error:')
    elif job['error'] is not None:
        raise job['error']


def library_ui(flow: Flow, videos: DocList[VideoDoc]) -> None:
    if not videos:
        st.info('The library is empty. Add videos in the **Add videos** tab.', icon=':material/info:')
        return
    widths = [6, 1.4, 1.4, 2.2, 1.4]
    for column, label in zip(st.columns(widths), ['Video', 'Duration', 'Keyframes', 'Added', '']):
        column.caption(label)
    for video in videos:
        name, duration, keyframes, added, delete = st.columns(widths, vertical_alignment='center')
        name.markdown(f'**{_markdown(Path(video.uri).name)}**  \n:gray[{video.width}×{video.height} · {video.fps:.3g} fps]',
                      help=video.uri)
        duration.write(format_time(video.duration))
        keyframes.write(str(video.frame_count))
        added.write(_local_time(video.added))
        with delete.popover('Delete', icon=':material/delete:'):
            st.markdown(f'Remove **{_markdown(Path(video.uri).name)}** from the index? The file stays on disk.')
            st.button('Yes, delete', key=f'delete-{video.video_id}', type='primary',
                      on_click=delete_video, args=(flow, video))


def delete_video(flow: Flow, video: VideoDoc) -> None:
    try:
        flow.post('/delete', DocList[VideoDoc]([VideoDoc(video_id=video.video_id)]))
    except VcedError as e:
        st.error(str(e), icon=':material/error:')
        return
    st.session_state.pop('results', None)  # they may show the deleted video
    st.toast(f'Deleted {Path(video.uri).name} from the index')


# ----------------------------------------------------------------------------- helpers


def _indexing() -> bool:
    """Whether this session's upload is being indexed."""
    job = st.session_state.get('index_job')
    return job is not None and not job['done']


def _play(rank: int) -> None:
    st.session_state.playing = rank


def time_range(match: SegmentDoc) -> str:
    """'00:12–00:18', the end rounded up so that a short segment never reads '00:00–00:00'."""
    return f'{format_time(match.start)}–{format_time(math.ceil(match.end))}'


def _local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime('%Y-%m-%d %H:%M')
    except ValueError:
        return iso


def _markdown(text: str) -> str:
    """`text` shown as is: Markdown's special characters escaped."""
    return re.sub(r'([\\`*_{}\[\]()#+\-.!|~<>$:])', r'\\\1', text)


if __name__ == '__main__':
    main()
