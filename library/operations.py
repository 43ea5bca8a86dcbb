"""Library: index, search, list, delete and transcripts over one Flow (flow.yml)."""
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from executors.documents import SCREEN, CueDoc, DocList, DuplicateDoc, QueryDoc, SegmentDoc, Status, VideoDoc, whole_videos
from executors.errors import ModelError, QueryError, VcedError, VideoError, WorkspaceError
from executors.media.cutting import cut_segment
from executors.media.thumbnails import checked
from executors.video_loader import file_sha256
from library.files import VIDEO_EXTENSIONS, find_videos, read_image, safe_file_name, save_upload
from library.report import (IndexSummary, format_time, highlight, local_time, one_line, plural, progress_fraction,
                            progress_text, shorten, time_range)
from library.pipeline import Flow, read_settings
from library.workspace import require_library

__all__ = ['Library']

Progress = Callable[[VideoDoc, str, int, int], None]  # progress(video, stage 'decode' | 'encode', done, total)
MAX_RESULTS = 10_000  # the most results one search pages through (top, and offset)
KNOWN_BATCH = 1000  # already indexed videos passed through the flow together (they need no work)


def import_models() -> None:
    """Import the model libraries (torch, torchvision, clip) in this thread. A program that indexes in one
    thread while another loads the models must do this first: two threads importing torch's packages at
    once can wait on each other's module locks for ever (the page's uploads hung at 'decoding')."""
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    from executors.models.clip_model import clip_package

    clip_package()


class Library:
    """The operations on one library (a workspace, or a Milvus collection), over one Flow.

    `flow` is the flow file (default: ./flow.yml, else the repository's); `overrides` replace its
    top-level settings (workspace, model, text_model, asr, backend, uri, device): the CLI's options and
    the page's; a value an executor refuses is blamed on `origin`. `create=False` opens only an existing
    library: reading commands never start an empty one where a name was mistyped.
    """

    def __init__(self, flow: str | Path | None = None, *, origin: str = 'an override', create: bool = True,
                 **overrides):
        if not create:
            require_library(read_settings(flow, **overrides), overrides)
        self.flow = Flow(flow, origin=origin, **overrides)
        self.notices: list[str] = []  # what warm_up found missing but not fatal

    # ---------------------------------------------------------------- indexing

    def index(self, paths: Iterable[str | Path], progress: Progress | None = None, ray: str = '') -> Iterator[VideoDoc]:
        """Index each video of `paths` (files, or folders searched recursively), yielding its VideoDoc
        with `status` and `error` set, in order. `ray`: run flow.yml's executors on a Ray cluster instead
        ('local' starts one here, else the cluster's address); this process stores what comes back.

        This is the one place that decides "already indexed": a file whose path, size and
        modification time match a stored video is not even hashed; any other is hashed, and
        decoded only when its content is new. Storage re-checks under its write lock, so two
        processes indexing the same file store it once.
        """
        if ray:
            yield from self._index_on_ray(paths, ray, progress)
            return
        stored, by_file = self._stored_files()
        requests = _requests((_triage(p, stored, by_file) for p in find_videos(paths)))
        known = DocList[VideoDoc]()
        try:
            for docs in self.flow.stream('/index', requests, parameters={'progress': progress}):
                known.extend(doc for doc in docs if doc.status == Status.ALREADY_INDEXED)
                yield from docs
        finally:
            self.flow.post('/save')  # the search graph, once per batch
        self._mend_thumbnails(known)

    def _mend_thumbnails(self, videos: DocList[VideoDoc]) -> None:
        """Draw again the thumbnails of stored videos that have gone missing (derived files are rebuilt)."""
        if videos and all(any(e.handles(endpoint) for e in self.flow.executors) for endpoint in ('/thumbnails', '/mend')):
            missing = self.flow.post('/thumbnails', DocList[VideoDoc]([VideoDoc(video_id=v.video_id) for v in videos]))
            if missing:
                self.flow.post('/mend', missing)

    def _index_on_ray(self, paths: Iterable[str | Path], address: str, progress: Progress | None) -> Iterator[VideoDoc]:
        """The flow's executors on Ray's workers, its storing step here; a file whose path, size and
        modification time match a stored video is not sent (the workers hash the others)."""
        from library.distributed import index_on_ray

        stored, by_file = self._stored_files()
        pending = []
        for path in find_videos(paths):
            doc = _triage(path, stored, by_file, hashing=False)
            if doc.status == Status.PENDING:
                pending.append(doc)
            else:
                yield doc
        try:
            yield from index_on_ray(pending, self.flow, address=address, indexed=frozenset(stored), progress=progress)
        finally:
            self.flow.post('/save')

    def known(self, path: str | Path) -> VideoDoc | None:
        """The stored video with the same content as `path` (hashed, never decoded), or None."""
        stored, by_file = self._stored_files()
        doc = _triage(Path(path), stored, by_file)
        if doc.status == Status.FAILED:
            raise VideoError(doc.error)
        return stored.get(doc.video_id) if doc.status == Status.ALREADY_INDEXED else None

    def _stored_files(self) -> tuple[dict[str, VideoDoc], dict[tuple[str, int, int], str]]:
        """The stored videos by id, and their ids by (path, size, mtime) of the file when indexed."""
        stored = {v.video_id: v for v in self.videos()}
        return stored, {(v.uri, v.size, v.mtime_ns): v.video_id for v in stored.values() if v.size}

    # ---------------------------------------------------------------- searching

    def search(self, text: str = '', image: np.ndarray | None = None, top: int = 10, by: str = 'segment',
               within: str = 'all', offset: int = 0) -> list[SegmentDoc]:
        """The best `top` matches (after `offset`) of a text or an image (RGB uint8 array), as
        moments (`by='segment'`) or whole videos; `within` 'all', 'visual' (keyframes), 'speech' or 'screen'."""
        if text.strip() and image is not None:
            raise QueryError('give a text or an image to search by, not both')
        query = QueryDoc(text=text, image=image)
        return self._search(query, top, by, within, offset)

    def similar(self, video_id: str, timestamp: float, top: int = 10, offset: int = 0) -> list[SegmentDoc]:
        """More like this: moments like the stored keyframe of `video_id` nearest to `timestamp`."""
        stored = self._stored(video_id)
        if not len(stored.frames):
            raise WorkspaceError(f'{video_id[:12]}: has no stored keyframes')
        times = np.array([f.timestamp for f in stored.frames])
        frame = stored.frames[int(np.argmin(np.abs(times - timestamp)))]
        query = QueryDoc(embedding=frame.embedding, space=stored.space)
        return self._search(query, top, 'segment', 'visual', offset)

    def locate(self, clip: str | Path, top: int = 10, offset: int = 0) -> list[SegmentDoc]:
        """Where a clip (a video file) comes from: the stored videos that hold its footage, best first, each
        with the range (start, end, seconds) the clip spans in it."""
        [video] = self.embed_videos([clip])
        if video.status == Status.FAILED:
            raise QueryError(video.error)
        if not len(video.frames):
            raise QueryError(f'{Path(clip).name}: no keyframes could be read from it')
        query = QueryDoc(frames=video.frames, duration=video.duration)
        found = self.flow.post('/locate', DocList[QueryDoc]([query]), parameters={'top': top + offset})[0].matches
        return [match.model_copy(update={'thumbnail': checked(match.thumbnail)}) for match in found[offset:offset + top]]

    def duplicates(self, threshold: float = 0.9) -> list[DuplicateDoc]:
        """Groups of stored videos that share footage (copies, trims, re-encodes), each video with the
        shared range; `threshold` is the least mean cosine of the aligned keyframes (0-1)."""
        if not 0 < threshold <= 1:
            raise QueryError(f'threshold must be above 0 and at most 1, not {threshold}')
        return list(self.flow.post('/duplicates', parameters={'threshold': threshold}))

    def _search(self, query: QueryDoc, top: int, by: str, within: str, offset: int) -> list[SegmentDoc]:
        if not 1 <= top <= MAX_RESULTS:
            raise QueryError(f'top must be from 1 to {MAX_RESULTS}, not {top}')
        if not 0 <= offset <= MAX_RESULTS:
            raise QueryError(f'offset must be from 0 to {MAX_RESULTS}, not {offset}')
        parameters = {'top': top, 'by': by, 'within': within, 'offset': offset}
        matches = list(self.flow.post('/search', DocList[QueryDoc]([query]), parameters=parameters)[0].matches)
        for match in matches:
            match.thumbnail = checked(match.thumbnail)
        return matches

    # ---------------------------------------------------------------- the library's contents

    def videos(self) -> list[VideoDoc]:
        """Every indexed video (oldest first) with its duration, keyframe and cue counts, date added."""
        return list(self.flow.post('/list'))

    def delete(self, target: str) -> list[VideoDoc]:
        """Remove the video named by id, id prefix (6+ hex characters) or path from the index (the file stays)."""
        return list(self.flow.post('/delete', DocList[VideoDoc]([_named(target)])))

    def transcript(self, target: str, source: str = 'speech') -> list[CueDoc]:
        """A video's timed text, named by id, id prefix or path: its subtitles or recognised speech
        (`source` 'speech'), or the text it shows (`source` 'screen')."""
        if source not in ('speech', SCREEN):
            raise QueryError(f"source must be speech or screen, not {source!r}")
        return [cue for cue in self._stored(target).cues if (cue.source == SCREEN) == (source == SCREEN)]

    def video(self, target: str) -> VideoDoc:
        """A stored video named by id, id prefix or path: its keyframes (time, thumbnail, embedding) and cues."""
        return self._stored(target)

    def _stored(self, target: str) -> VideoDoc:
        return self.flow.post('/video', DocList[VideoDoc]([_named(target)]))[0]

    # ---------------------------------------------------------------- models

    def warm_up(self) -> list[str]:
        """Load the models now (a page shows missing weights at start-up, not at the first search).

        Under text_model 'auto' a missing multilingual model does not stop English searches: it is
        returned as a notice instead. The storage reads ahead what searches need (at a million
        keyframes: its 1 GB of rows verified and every keyframe time, a few seconds).
        """
        self.embed_texts(['a video'])  # first: what a text search waits for
        if any(executor.handles('/warm') for executor in self.flow.executors):
            self.flow.post('/warm')
        if self.text_model == 'auto':
            try:
                self.embed_texts(['一段视频'])
            except ModelError as e:
                self.notices = [f'{e}. Until then, queries that are not plain English cannot be searched.']
        return self.notices

    def embed_texts(self, texts: list[str], batch: int = 256) -> np.ndarray:
        """Texts x dim query embeddings from the flow's text encoder (nothing is searched or stored)."""
        rows = []
        for start in range(0, len(texts), batch):
            docs = DocList[QueryDoc]([QueryDoc(text=t) for t in texts[start:start + batch]])
            for query in self.flow.post('/encode', docs):
                if query.embedding is None:
                    raise VcedError("texts came back from '/encode' without embeddings "
                                    "(does the flow's TextEncoder handle '/encode'?)")
                rows.append(np.asarray(query.embedding, dtype=np.float32))
        return np.stack(rows)

    def embed_videos(self, paths: Iterable[str | Path], progress: Progress | None = None) -> Iterator[VideoDoc]:
        """Each video decoded and embedded by the flow (frames with embeddings), nothing stored."""
        requests = (DocList[VideoDoc]([VideoDoc(uri=str(p))]) for p in paths)
        yield from whole_videos(self.flow.stream('/encode', requests, parameters={'progress': progress}))

    @property
    def text_model(self) -> str:
        """Which text tower embeds queries: 'clip', 'multilingual' or 'auto' (flow.yml, --text-model)."""
        return str(self.flow.arguments.get('TextEncoder', {}).get('text_model', 'auto'))

    def cut(self, segment: SegmentDoc) -> bytes:
        """The segment's part of its video as MP4 bytes, re-encoded so it starts on the right frame, with the
        ffmpeg the flow decodes with."""
        ffmpeg = next((e.ffmpeg for e in self.flow.executors if hasattr(e, 'ffmpeg')), None)
        return cut_segment(segment.uri, segment.start, segment.end, ffmpeg)

    @property
    def settings(self) -> dict:
        """flow.yml as overridden: what decides the flow's behaviour (for caches keyed by it)."""
        return self.flow.settings

    def close(self) -> None:
        self.flow.close()

    def __enter__(self) -> 'Library':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _requests(docs: Iterator[VideoDoc]) -> Iterator[DocList[VideoDoc]]:
    """One request per video to index; videos that need no work travel together."""
    known = DocList[VideoDoc]()
    for doc in docs:
        if doc.status != Status.PENDING:
            known.append(doc)
            if len(known) < KNOWN_BATCH:
                continue
        if known:
            yield known
            known = DocList[VideoDoc]()
        if doc.status == Status.PENDING:
            yield DocList[VideoDoc]([doc])
    if known:
        yield known


def _triage(path: Path, stored: dict[str, VideoDoc], by_file: dict, hashing: bool = True) -> VideoDoc:
    """A VideoDoc for `path` with its id (unhashed when its path, size and mtime match a stored video)
    and, when no decoding is needed, its status: 'already indexed', or 'failed' with the reason.
    Without `hashing`, a file that does not match is left pending with no id (the loader hashes it)."""
    doc = VideoDoc(uri=os.path.abspath(os.path.expanduser(path)))
    try:
        status = os.stat(doc.uri)
        known = by_file.get((doc.uri, status.st_size, status.st_mtime_ns))
    except OSError:
        known = None  # file_sha256 says why in one line: no such file, unreadable
    if not known and not hashing:
        return doc
    try:
        doc.video_id = known or file_sha256(Path(doc.uri))
    except VideoError as e:
        doc.status, doc.error = Status.FAILED, str(e)
        return doc
    if doc.video_id in stored:
        doc.status = Status.ALREADY_INDEXED
    return doc


def _named(target: str) -> VideoDoc:
    import re

    if re.fullmatch(r'[0-9a-fA-F]{1,64}', target) and not os.path.exists(target):
        if len(target) < 6:
            raise QueryError(f"'{target}': a video id prefix needs at least 6 characters (no file has that name)")
        return VideoDoc(video_id=target.lower())
    return VideoDoc(uri=os.path.abspath(os.path.expanduser(target)))
