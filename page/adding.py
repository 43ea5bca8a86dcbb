"""The page's Add videos tab: uploads saved, checked against the library at once, indexed in the background."""
import os
import re
import threading
from pathlib import Path

import streamlit as st

from executors.documents import Status, VideoDoc
from executors.errors import VcedError
from library import VIDEO_EXTENSIONS, IndexSummary, Library, progress_fraction, progress_text, save_upload


def add_ui(lib: Library, folder: Path) -> None:
    job = st.session_state.get('index_job')
    running = indexing()
    with st.form('add', clear_on_submit=True, border=False):
        files = st.file_uploader('Videos to add', type=sorted(e[1:] for e in VIDEO_EXTENSIONS),
                                 accept_multiple_files=True, key='uploads')
        st.caption(f'Saved in `{folder}`, then indexed here; searching keeps working meanwhile.')
        add = st.form_submit_button('Add and index', type='primary', icon=':material/upload:', disabled=running)
    if add and not files:
        st.warning('Choose one or more video files first.')
    elif add:
        try:
            saved = [save_upload(f.name, f, folder) for f in files]
        except VcedError as e:
            st.error(str(e), icon=':material/error:')
            return
        job = st.session_state.index_job = start_indexing(lib, saved)
        running = not job['done']
    if running:
        progress_ui()
    elif job is not None:
        summary_ui(job)


def start_indexing(lib: Library, paths: list[Path]) -> dict:
    """Index `paths` in a background thread; the page polls the returned job while searches go on.

    A file whose content is already indexed is told at once (hashed, never decoded) and its copy removed.
    """
    job = {'paths': [os.path.realpath(p) for p in paths], 'progress': {}, 'videos': {}, 'error': None, 'done': False}
    new = []
    for path in job['paths']:
        try:
            stored = lib.known(path)
        except VcedError:
            stored = None  # unreadable: indexing says why
        if stored is None:
            new.append(path)
        else:
            Path(path).unlink(missing_ok=True)
            job['videos'][path] = VideoDoc(uri=path, video_id=stored.video_id, status=Status.ALREADY_INDEXED,
                                           error=f'as {Path(stored.uri).name}')

    def progress(video: VideoDoc, stage: str, done: int, total: int) -> None:
        kind = 'speech' if stage == 'speech' else 'frames'
        job['progress'][os.path.realpath(video.uri), kind] = (stage, done, total)

    def run() -> None:
        try:
            stored = None
            for video in lib.index(new, progress):
                path = os.path.realpath(video.uri)
                if video.status == Status.ALREADY_INDEXED:  # a copy uploaded twice at once: keep the stored one
                    stored = stored or {os.path.realpath(v.uri): v for v in lib.videos()}
                    if path not in stored:
                        Path(path).unlink(missing_ok=True)
                elif video.status == Status.FAILED:
                    Path(path).unlink(missing_ok=True)  # this upload's unreadable copy
                job['videos'][path] = video
        except Exception as e:  # shown on the page by summary_ui
            job['error'] = e
        finally:
            job['done'] = True

    if new:
        threading.Thread(target=run, name='vced-index', daemon=True).start()
    else:
        job['done'] = True
    return job


def indexing() -> bool:
    """Whether this session's upload is being indexed."""
    job = st.session_state.get('index_job')
    return job is not None and not job['done']


@st.fragment(run_every=0.5)
def progress_ui() -> None:
    """A bar per video (keyframes decoded, then embedded) and one while its speech is recognised,
    redrawn until the job is done."""
    job = st.session_state.index_job
    for path in job['paths']:
        video = job['videos'].get(path)
        stage, done, total = job['progress'].get((path, 'frames'), ('waiting', 0, 0))
        if video is not None:
            fraction, what = 1.0, str(video.status)
        elif total:
            fraction, what = progress_fraction(stage, done, total), progress_text(stage, done, total)
        else:
            fraction, what = 0.0, 'waiting'
        st.progress(fraction, text=f'{Path(path).name} · {what}')
        if video is None and (path, 'speech') in job['progress']:
            speech = job['progress'][path, 'speech']
            st.progress(progress_fraction(*speech), text=f'{Path(path).name} · {progress_text(*speech)}')
    if job['done']:
        st.rerun()  # the whole page: the library and the search see the new videos


def summary_ui(job: dict) -> None:
    summary = IndexSummary()
    for video in job['videos'].values():
        summary.add(video)
    (st.warning if summary.counts[Status.FAILED] or job['error'] else st.success)(summary.line())
    for path, video in job['videos'].items():
        if video.status == Status.FAILED:
            st.error(video.error, icon=':material/error:')
        else:
            frames = video.frame_count or len(video.frames)
            detail = (f', {frames} keyframes' if video.status == Status.INDEXED and frames
                      else f' {video.error}' if video.error else '')
            st.markdown(f'- {escape_markdown(Path(path).name)}: {video.status}{escape_markdown(detail)}')
    if isinstance(job['error'], VcedError):
        st.error(str(job['error']), icon=':material/error:')
    elif job['error'] is not None:
        raise job['error']


def escape_markdown(text: str) -> str:
    """`text` shown as is: Markdown's special characters escaped."""
    return re.sub(r'([\\`*_{}\[\]()#+\-.!|~<>$:])', r'\\\1', text)
