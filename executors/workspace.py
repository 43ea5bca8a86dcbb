"""A workspace folder: the catalog, the vectors and the thumbnails, kept consistent with each other.

Adding a video appends its embeddings (fsync'd), then commits its catalog rows in one SQLite
transaction: that commit is the moment it exists. Rows on disk that no committed video owns (a
crash between the two) are ignored by readers and cut off by the next writer, which also removes
thumbnail folders no committed video owns and a half-saved graph. The HNSW graph is
updated after the commit and saved on close; a stale saved graph is brought up to date on load.
One process writes at a time (a file lock taken on the first write); any number read.
"""
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from executors.catalog import Catalog, VideoRow, now_iso
from executors.documents import VideoDoc
from executors.errors import WorkspaceError
from executors.vector_store import VectorStore

log = logging.getLogger(__name__)

CLOCK_SLACK = 0.02  # seconds: file times come from a coarser clock (a jiffy, 1 to 10 ms) than time.time()


class Workspace:
    """Stored videos and their keyframe vectors under `folder`; see the module docstring."""

    def __init__(self, folder: str | Path, *, M: int, ef_construction: int, ef_search: int):
        self.folder = Path(folder)
        self._opened = time.time()  # what a writer finds older than this, no loader of this process wrote
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkspaceError(f'{self.folder}: cannot create the workspace ({e.strerror})') from e
        self.graph_params = {'M': M, 'ef_construction': ef_construction, 'ef_search': ef_search}
        catalog, rows = self.folder / 'catalog.sqlite', self.folder / 'embeddings.f16'
        if not catalog.exists() and rows.exists() and rows.stat().st_size:  # never start over silently
            raise WorkspaceError(f'{catalog}: missing, though {rows.name} holds the embeddings of indexed videos: '
                                 f'restore it from a backup, or index your videos into a new --workspace')
        self.catalog = Catalog(catalog)
        self.vectors: VectorStore | None = None
        self._lock = None
        self._dirty = False  # the graph changed since it was saved
        self._version = None
        self.videos: dict[str, VideoRow] = {}
        self._timestamps: dict[str, np.ndarray] = {}  # per video, read on first use
        self._shots: dict[str, list[float]] = {}
        self._means: tuple[list[str], np.ndarray] | None = None
        self.refresh()

    # ------------------------------------------------------------------ reading

    def refresh(self) -> None:
        """Catch up with what another process committed since we last looked (cheap when nothing did)."""
        version = self.catalog.version()
        if version == self._version:
            return
        before = self.videos
        self._version = version
        self.videos = {v.id: v for v in self.catalog.videos()}
        self._order = sorted(self.videos.values(), key=lambda v: v.first_label)
        self._first_labels = np.array([v.first_label for v in self._order], dtype=np.int64)
        self._timestamps = {k: t for k, t in self._timestamps.items() if k in self.videos}
        self._shots = {k: t for k, t in self._shots.items() if k in self.videos}
        self._means = None
        dim = self.catalog.meta('dim')
        if dim and self.vectors is None:
            self.vectors = VectorStore(self.folder, dim, **self.graph_params)
        if self.vectors is not None and self.vectors.graph is not None:
            for gone in before.keys() - self.videos.keys():
                self.vectors.remove_from_graph(before[gone].first_label, before[gone].frame_count)
            for new in sorted(self.videos.keys() - before.keys()):
                video = self.videos[new]
                self.vectors.add_labels(np.arange(video.first_label, video.first_label + video.frame_count))

    def frame_count(self) -> int:
        return sum(v.frame_count for v in self.videos.values())

    def graph(self) -> VectorStore | None:
        """The vectors with their HNSW graph loaded; None while nothing is stored."""
        self.refresh()
        if self.vectors is not None and self.vectors.graph is None:
            self._dirty = self.vectors.open_graph(self._live_mask())
            if self._dirty and self._lock is None and self._try_lock():
                self.refresh()  # a reader that rebuilt the graph saves it when nobody is writing
                self.save()
                self._release()
        return self.vectors

    def _live_mask(self) -> np.ndarray:
        live = np.zeros(self.catalog.next_label(), dtype=bool)
        for video in self.videos.values():
            live[video.first_label:video.first_label + video.frame_count] = True
        return live

    def owners(self, labels: np.ndarray) -> list[VideoRow]:
        """The videos owning `labels`, each once, in order of first appearance."""
        positions = np.searchsorted(self._first_labels, labels, side='right') - 1
        seen = dict.fromkeys(int(p) for p in positions if p >= 0)
        return [self._order[p] for p in seen]

    def timestamps(self, video_id: str) -> np.ndarray:
        if video_id not in self._timestamps:
            self._timestamps[video_id] = self.catalog.frames(video_id)[0]
        return self._timestamps[video_id]

    def shots(self, video_id: str) -> list[float]:
        if video_id not in self._shots:
            self._shots[video_id] = self.catalog.shots(video_id)
        return self._shots[video_id]

    def thumbnail(self, label: int) -> str:
        return self.catalog.thumbnail(label)

    def means(self) -> tuple[list[str], np.ndarray]:
        """Every video's id and its L2-normalised mean frame embedding (CLIP4Clip's meanP)."""
        if self._means is None:
            ids = [v.id for v in self._order]
            means = self.catalog.means(ids) if ids else np.zeros((0, self.vectors.dim if self.vectors else 1))
            self._means = ids, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return self._means

    def find(self, video_id: str = '', uri: str = '') -> list[VideoRow]:
        """Videos whose id starts with `video_id` (6+ hex characters) or whose path is `uri`."""
        if video_id:
            return [v for v in self._order if v.id.startswith(video_id.lower())]
        return [v for v in self._order if v.path in (uri, os.path.abspath(uri))]

    # ------------------------------------------------------------------ writing

    def add(self, video: VideoDoc) -> str:
        """Store a decoded and embedded video: 'indexed', or 'already indexed' when its id is stored."""
        self.start_writing()
        if video.video_id in self.videos:
            return 'already indexed'
        embeddings = _frame_embeddings(video)
        vectors = self._vectors_of(embeddings.shape[1])
        first = vectors.append(embeddings)
        row = VideoRow(video.video_id, video.uri, float(video.duration), float(video.fps), int(video.width),
                       int(video.height), now_iso(), first, len(embeddings))
        try:
            self.catalog.add_video(row, [f.timestamp for f in video.frames], [f.thumbnail for f in video.frames],
                                   list(video.shots), embeddings.mean(axis=0), dim=embeddings.shape[1])
        except BaseException:
            vectors.truncate(first)
            raise
        self._version = self.catalog.version()
        self.videos[row.id] = row
        self._order.append(row)
        self._first_labels = np.append(self._first_labels, first)
        self._means = None
        if vectors.graph is not None:
            vectors.add_to_graph(np.arange(first, first + len(embeddings)), embeddings)
            self._dirty = True
        return 'indexed'

    def delete(self, video: VideoRow) -> None:
        """Remove a video from the catalog and the graph, and its thumbnails."""
        self.start_writing()
        self.catalog.delete_video(video.id)
        self._version = self.catalog.version()
        if self.vectors is not None and self.vectors.graph is not None:
            self.vectors.remove_from_graph(video.first_label, video.frame_count)
            self._dirty = True
        del self.videos[video.id]
        self._order = [v for v in self._order if v.id != video.id]
        self._first_labels = np.array([v.first_label for v in self._order], dtype=np.int64)
        self._timestamps.pop(video.id, None)
        self._shots.pop(video.id, None)
        self._means = None
        shutil.rmtree(self.folder / 'thumbnails' / video.id, ignore_errors=True)

    def _vectors_of(self, dim: int) -> VectorStore:
        if self.vectors is None:
            self.vectors = VectorStore(self.folder, dim, **self.graph_params)
            self.vectors.truncate(self.catalog.next_label())
            self.vectors.open_graph(np.zeros(self.catalog.next_label(), dtype=bool))
        if dim != self.vectors.dim:
            raise WorkspaceError(f'{self.folder}: holds {self.vectors.dim}-dimensional embeddings, this model '
                                 f'gives {dim}: index with the same model or use another workspace')
        return self.vectors

    def start_writing(self) -> None:
        """Become the workspace's only writer (lazily, on the first write); drop what killed writers left."""
        if self._lock is not None:
            return
        if not self._try_lock():
            owner = (self.folder / 'lock').read_text().strip() or 'another process'
            raise WorkspaceError(f'{self.folder}: the workspace is locked by a process writing to it '
                                 f'(pid {owner}); wait for it to finish or use another --workspace')
        self.refresh()
        if self.vectors is not None:
            stored, committed = self.vectors.row_count(), self.catalog.next_label()
            if stored < committed:
                raise WorkspaceError(f'{self.vectors.rows_path}: holds {stored} embeddings but the catalog '
                                     f'needs {committed}: the workspace is corrupt, index into a new one')
            if stored > committed:
                log.info('%s: dropping %d embeddings of an interrupted add', self.vectors.rows_path,
                         stored - committed)
            self.vectors.truncate(committed)  # also a partly written row
            self.vectors.graph_path.with_suffix('.tmp').unlink(missing_ok=True)  # a half-saved graph
            self.graph()
        self._remove_orphan_thumbnails()

    def _remove_orphan_thumbnails(self) -> None:
        """Delete thumbnail folders that no committed video owns (a killed loader's staging, or the
        frames of a video killed before its commit), if they predate this process's opening of the
        workspace: newer ones may be its own loader's, one video ahead of the Indexer."""
        folder = self.folder / 'thumbnails'
        for entry in folder.iterdir() if folder.is_dir() else ():
            try:
                stale = entry.name not in self.videos and entry.stat().st_mtime < self._opened - CLOCK_SLACK
            except FileNotFoundError:  # renamed or removed by its loader meanwhile
                continue
            if stale:
                log.info('%s: removing the thumbnails of an interrupted index', entry)
                shutil.rmtree(entry, ignore_errors=True)

    def _try_lock(self) -> bool:
        handle = open(self.folder / 'lock', 'a+')  # noqa: SIM115 - held until _release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle
        return True

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.truncate(0)
            self._lock.close()
            self._lock = None

    def save(self) -> None:
        """Persist the graph if this process changed it (only the lock holder writes files)."""
        if self._dirty and self._lock is not None and self.vectors is not None:
            self.vectors.save_graph()
            self._dirty = False

    def close(self) -> None:
        self.save()
        self._release()
        if self.vectors is not None:
            self.vectors.close()
        self.catalog.close()


def _frame_embeddings(video: VideoDoc) -> np.ndarray:
    """The frames' embeddings, L2-normalised, one row each; a clear error when there are none."""
    name = Path(video.uri).name or video.video_id
    if not video.video_id:
        raise WorkspaceError(f'{name}: has no video_id (it was not loaded)')
    if not len(video.frames) or any(f.embedding is None for f in video.frames):
        raise WorkspaceError(f'{name}: has no keyframe embeddings to index')
    embeddings = np.stack([np.asarray(f.embedding, dtype=np.float32).ravel() for f in video.frames])
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
