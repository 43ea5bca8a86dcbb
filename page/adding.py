"""The page's Add videos tab: uploads (videos, and subtitle files beside them) saved to disk, checked
against the library at once, indexed in the background."""
import glob
import os
import re
import threading
from pathlib import Path

import streamlit as st

from executors.documents import Status, VideoDoc
from executors.errors import VcedError
from library import VIDEO_EXTENSIONS, IndexSummary, Library, progress_fraction, progress_text, save_upload
from page.subtitles import SUBTITLE_TYPES, line_counts, save_sidecars


def add_ui(lib: Library, folder: Path, ready: threading.Event | None = None) -> None:
    job = st.session_state.get('index_job')
    running = indexing()
    with st.form('add', clear_on_submit=True, border=False):  # cleared: Streamlit drops the uploads it held
        files = st.file_uploader('Videos to add, with their subtitles (.srt, .vtt) if you have them',
                                 type=sorted({e[1:] for e in VIDEO_EXTENSIONS} | set(SUBTITLE_TYPES)),
                                 accept_multiple_files=True, key='uploads')
        st.caption(f'Saved in `{folder}`, then indexed here; searching keeps working meanwhile. A subtitle file '
                   'goes with the video of the same name (cooking.srt or cooking.en.vtt with cooking.mp4).')
        add = st.form_submit_button('Add and index', type='primary', icon=':material/upload:', disabled=running)
    videos = [f for f in files or [] if Path(f.name).suffix.lower() in VIDEO_EXTENSIONS]
    if add and not videos:
        st.warning('No video has been uploaded to this form yet: choose one or more video files, wait until each '
                   'is listed with its size, then click Add and index.')
    elif add:
        try:
            saved = {save_upload(f.name, f, folder): Path(f.name).name for f in videos}
            unmatched = save_sidecars([f for f in files if f not in videos], saved)
        except VcedError as e:
            st.error(str(e), icon=':material/error:')
            return
        job = st.session_state.index_job = start_indexing(lib, list(saved), names=saved, ready=ready)
        job['unmatched'] = unmatched
        running = not job['done']
    if running:
        progress_ui()
    elif job is not None:
        summary_ui(job)


def start_indexing(lib: Library, paths: list[Path], names: dict[Path, str] | None = None,
                   ready: threading.Event | None = None) -> dict:
    """Index `paths` in a background thread; the page polls the returned job while searches go on.
    `names`: the name each file had on the user's machine (a saved copy may be renamed on a clash);
    `ready`: set once the models are loaded (indexing starts after).

    A file whose content is already indexed is told at once (hashed, never decoded) and its copy removed.
    """
    job = {'paths': [os.path.realpath(p) for p in paths], 'progress': {}, 'videos': {}, 'error': None, 'done': False,
           'names': {os.path.realpath(p): name for p, name in (names or {}).items()}}
    new = []
    for path in job['paths']:
        try:
            stored = lib.known(path)
        except VcedError:
            stored = None  # unreadable: indexing says why
        if stored is None:
            new.append(path)
        else:
            _remove(path)
            job['videos'][path] = VideoDoc(uri=path, video_id=stored.video_id, status=Status.ALREADY_INDEXED,
                                           error=f'as {Path(stored.uri).name}')

    def progress(video: VideoDoc, stage: str, done: int, total: int) -> None:
        kind = 'speech' if stage == 'speech' else 'frames'
        job['progress'][os.path.realpath(video.uri), kind] = (stage, done, total)

    def run() -> None:
        try:
            if ready is not None:
                ready.wait()
            stored = None
            for video in lib.index(new, progress):
                path = os.path.realpath(video.uri)
                if video.status == Status.ALREADY_INDEXED:  # a copy uploaded twice at once: keep the stored one
                    stored = stored or {os.path.realpath(v.uri): v for v in lib.videos()}
                    if path not in stored:
                        _remove(path)
                elif video.status == Status.FAILED:
                    _remove(path)  # this upload's unreadable copy
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


def _remove(path: str) -> None:
    """An upload's copy that is not kept, and the subtitle files saved beside it."""
    Path(path).unlink(missing_ok=True)
    for sidecar in Path(path).parent.glob(f'{glob.escape(Path(path).stem)}.*'):
        if sidecar.suffix.lower() in {f'.{t}' for t in SUBTITLE_TYPES}:
            sidecar.unlink(missing_ok=True)


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
    for name in job.get('unmatched', []):
        st.warning(f'{name}: no video of that name among these uploads, so it was not saved; upload it '
                   'together with its video.')
    for path, video in job['videos'].items():
        name = job.get('names', {}).get(path) or Path(path).name  # as the user knows it, not a renamed copy
        if video.status == Status.FAILED:
            st.error(video.error.replace(Path(path).name, name, 1), icon=':material/error:')
        elif video.status == Status.INDEXED:
            frames = video.frame_count or len(video.frames)
            st.markdown(f'- {escape_markdown(name)}: {video.status}, {frames} keyframes, '
                        f'{escape_markdown(line_counts(list(video.cues), video.cue_count))}')
        else:
            detail = '' if video.error in ('', f'as {name}') else f' {video.error}'  # 'already indexed as <its name>'
            st.markdown(f'- {escape_markdown(name)}: {video.status}{escape_markdown(detail)}')
    if isinstance(job['error'], VcedError):
        st.error(str(job['error']), icon=':material/error:')
    elif job['error'] is not None:
        raise job['error']


def escape_markdown(text: str) -> str:
    """`text` shown as is: Markdown's special characters escaped."""
    return re.sub(r'([\\`*_{}\[\]()#+\-.!|~<>$:])', r'\\\1', text)
