"""The Library tab: every indexed video with a keyframe, its timed-text lines and the videos it shares
footage with, found by name and sorted; deleting asks first, for that video only."""
from pathlib import Path

import streamlit as st

from executors.documents import VideoDoc
from executors.errors import VcedError
from library import Library, format_time, local_time, plural, shared_footage_notes
from page.adding import escape_markdown as _markdown
from page.media_server import MediaServer
from page.subtitles import line_counts

SORTS = {'newest': 'Newest first', 'oldest': 'Oldest first', 'name': 'Name', 'longest': 'Longest first'}


@st.cache_resource(max_entries=2000, show_spinner=False)
def details(_lib: Library, video_id: str, cue_count: int) -> tuple[str | None, str]:
    """A video's middle keyframe (its thumbnail file) and its line counts; kept per video (a video's
    content never changes under its id)."""
    try:
        stored = _lib.video(video_id)
    except (VcedError, IndexError):  # deleted meanwhile
        return None, ''
    frames = [f for f in stored.frames if f.thumbnail]
    thumbnail = frames[len(frames) // 2].thumbnail if frames else None
    return thumbnail, line_counts(list(stored.cues), cue_count)


@st.cache_resource(max_entries=4, show_spinner='Looking for videos that share footage…')
def shared_footage(_lib: Library, version: tuple[str, ...]) -> dict[str, list[str]]:
    """Per video id, the lines that say which other videos hold the same footage (`duplicates`); found
    again only when the library changed (`version`: its video ids)."""
    try:
        return shared_footage_notes(_lib.duplicates())
    except VcedError:  # changed meanwhile: the page redraws with the new library
        return {}


def library_ui(lib: Library, media: MediaServer, videos: list[VideoDoc]) -> None:
    if not videos:
        st.info('The library is empty. Add videos in the **Add videos** tab.', icon=':material/info:')
        return
    find, order = st.columns([3, 1], vertical_alignment='bottom')
    wanted = find.text_input('Find a video', key='library_find', placeholder='part of its name')
    sort = order.selectbox('Sort', list(SORTS), format_func=SORTS.get, key='library_sort')
    shown = sorted_videos([v for v in videos if wanted.casefold() in Path(v.uri).name.casefold()], sort)
    st.caption(f'{plural(len(shown), "video")} of {len(videos)}' if wanted else plural(len(videos), 'video'))
    widths = [1.6, 5, 1.3, 1.3, 2.2, 1.4]
    for column, label in zip(st.columns(widths), ['', 'Video', 'Duration', 'Keyframes', 'Added', '']):
        column.caption(label)
    confirming = st.session_state.get('confirm_delete')
    shared = shared_footage(lib, tuple(v.video_id for v in videos))
    for video in shown:
        picture, name, duration, keyframes, added, delete = st.columns(widths, vertical_alignment='center')
        thumbnail, lines = details(lib, video.video_id, video.cue_count)
        if thumbnail and Path(thumbnail).is_file():
            picture.image(thumbnail, width='stretch')
        name.markdown(f'**{_markdown(Path(video.uri).name)}**  \n:gray[{video.width}×{video.height} · '
                      f'{video.fps:.3g} fps · {_markdown(lines)}]' + _shared_lines(shared.get(video.video_id, [])),
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


def _shared_lines(notes: list[str]) -> str:
    return ''.join(f'  \n:violet[:material/content_copy: {_markdown(n)}]' for n in notes)


def sorted_videos(videos: list[VideoDoc], sort: str) -> list[VideoDoc]:
    if sort == 'name':
        return sorted(videos, key=lambda v: Path(v.uri).name.casefold())
    if sort == 'longest':
        return sorted(videos, key=lambda v: -v.duration)
    oldest = sorted(videos, key=lambda v: v.added)  # stable: ties stay in the library's own order (oldest first)
    return oldest[::-1] if sort == 'newest' else oldest


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


def _set(key: str, value) -> None:
    st.session_state[key] = value
