"""The default backend: a workspace folder on local disk (float16 rows + faiss IVF or hnswlib index + SQLite catalog).

Adding a video, under the write lock: append its embeddings (fsync'd), move its thumbnails into place, then commit
its catalog rows in one SQLite transaction: that commit is the moment it exists. Rows, thumbnail folders and a
half-saved index that no committed video owns (a crash between the steps) are ignored by readers and removed by the
next writer. The lock is held only while a write runs, so several processes (the page and the CLI) take turns; any
number read, and see each other's commits without reopening. The index is derived and can always be rebuilt from
the rows; the rows are never rewritten, only appended to (and their uncommitted tail cut off).
"""
import contextlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from executors.retrieval import cue_search
from executors.storage.ann.base import IndexConfig
from executors.storage.local.catalog import Catalog, VideoRow, now_iso
from executors.documents import SCREEN, CueDoc
from executors.errors import WorkspaceError
from executors.storage.interface import Frames, ImageSpace, Neighbours, Storage, VideoRecord
from executors.media.thumbnails import place_thumbnails, remove_orphans, remove_staged
from executors.vectors import unit_rows
from executors.storage.local.vector_store import VectorStore, storage_error
from executors.storage.local.checks import catalog_may_be_created, check_agreement, check_space, video_means
from executors.storage.local.lock import WriteLock

log = logging.getLogger(__name__)


class HnswlibStorage(Storage):
    """Stored videos and their keyframe vectors under `folder`; see the module docstring. index ('ivf' or
    'hnsw'), M, ef_construction, ef_search, nprobe, exact_below: the nearest-neighbour index and its knobs
    (the Indexer, executors/storage/ann/base.py); lock_wait: seconds a write waits for another's to finish."""

    def __init__(self, folder: str | Path, *, index: str = 'ivf', M: int = 16, ef_construction: int = 100,
                 ef_search: int = 256, nprobe: int = 96, exact_below: int = 40_000, lock_wait: float = 60.0):
        self.folder, self.location = Path(folder), str(Path(folder))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkspaceError(f'{self.folder}: cannot create the workspace ({e.strerror})') from e
        self.index_config = IndexConfig(index, M, ef_construction, ef_search, nprobe, exact_below)
        self.thumbnails = self.folder / 'thumbnails'
        self.catalog = Catalog(self.folder / 'catalog.sqlite', create=catalog_may_be_created(self.folder))
        self.lock = WriteLock(self.folder, lock_wait)
        self._recovered = False  # what a killed writer left was looked for at this process's first write
        self.vectors: VectorStore | None = None
        self._dirty, self._version = False, None  # whether the index changed since it was saved; data_version seen
        self._videos: dict[str, VideoRow] = {}
        self._order: list[VideoRow] = []
        self._first_labels = np.empty(0, np.int64)
        # per video, by first label (never reused): keyframe times and shot cuts read once, and
        # whether its rows matched their checksum (checked once per process, before first use)
        self._times: dict[int, np.ndarray] = {}
        self._shots: dict[int, list[float]] = {}
        self._verified: set[int] = set()
        self._means: tuple[list[str], np.ndarray] | None = None
        with self.catalog.snapshot():  # a writer elsewhere may commit between these reads
            self._refresh()
            check_agreement(self.catalog, self.vectors, self._order)

    # ------------------------------------------------------------------ reading

    def _refresh(self) -> None:
        """Catch up with what other processes committed since we last looked (cheap when nothing was)."""
        version = self.catalog.version()
        if version == self._version:
            return
        self._version = version
        self._follow({v.id: v for v in self.catalog.videos()})

    def _follow(self, videos: dict[str, VideoRow]) -> None:
        """Take `videos` as what is stored: caches pruned, the loaded index brought in line."""
        before, self._videos = self._videos, videos
        self._order = list(self._videos.values())
        self._first_labels = np.array([v.first_label for v in self._order], dtype=np.int64)
        live = {v.first_label for v in self._order}
        self._times = {k: t for k, t in self._times.items() if k in live}
        self._shots = {k: t for k, t in self._shots.items() if k in live}
        self._verified &= live
        self._means = None
        dim = self.catalog.meta('dim')
        if dim and self.vectors is None:
            self.vectors = VectorStore(self.folder, dim, self.index_config)
        if self.vectors is not None and self.vectors.index is not None:
            for gone in before.keys() - self._videos.keys():
                self.vectors.remove_from_index(before[gone].first_label, before[gone].frame_count)
                self._dirty = True
            for new in sorted(self._videos.keys() - before.keys(), key=lambda v: self._videos[v].first_label):
                self._add_to_index(self._videos[new])

    def videos(self) -> list[VideoRecord]:
        self._refresh()
        cues = self.catalog.cue_counts()
        return [_record(v, cues.get(v.id, 0)) for v in self._order]

    def screen_counts(self) -> dict[str, int]:
        return self.catalog.cue_counts(SCREEN)

    def video(self, video_id: str) -> VideoRecord | None:
        self._refresh()
        return _record(row, -1) if (row := self._videos.get(video_id)) else None

    def find(self, video_id: str = '', path: str = '') -> list[VideoRecord]:
        self._refresh()
        found = [v for v in self._order if (v.id.startswith(video_id.lower()) if video_id
                                            else v.path in (path, os.path.abspath(path)))]
        cues = self.catalog.cue_counts() if found else {}
        return [_record(v, cues.get(v.id, 0)) for v in found]

    def frames(self, video_id: str) -> Frames:
        video = self._stored(video_id)
        timestamps, thumbnails = self.catalog.frames(video_id)
        return Frames(timestamps, self._rows(video), thumbnails)

    def keyframe_times(self, video_id: str) -> np.ndarray:
        video = self._videos.get(video_id) or self._stored(video_id)  # search just caught up in nearest()
        if video.first_label not in self._times:
            self._times[video.first_label] = self.catalog.frame_times(video_id)
        return self._times[video.first_label]

    def keyframe_scores(self, video_id: str, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        video = self._videos.get(video_id) or self._stored(video_id)
        scores = self.vectors.scores(video.first_label, video.frame_count, query, self._unverified(video), video.path)
        self._verified.add(video.first_label)
        return self.keyframe_times(video_id), scores

    def thumbnail(self, video_id: str, index: int) -> str:
        video = self._videos.get(video_id) or self._stored(video_id)
        return self.catalog.thumbnail(video.first_label + index) if 0 <= index < video.frame_count else ''

    def shots(self, video_id: str) -> list[float]:
        if (video := self._videos.get(video_id)) is None:
            return self.catalog.shots(video_id)
        if video.first_label not in self._shots:
            self._shots[video.first_label] = self.catalog.shots(video_id)
        return list(self._shots[video.first_label])

    def preload(self) -> None:
        """Verify all rows and read all keyframe times and shot cuts now: first searches cost what repeats do."""
        if self._searchable_vectors() is not None:
            stored = self.catalog.all_times_and_shots()
            for video in self._order:
                self._times[video.first_label], self._shots[video.first_label] = stored.get(video.id, (np.empty(0), []))
                with contextlib.suppress(WorkspaceError):  # damaged rows still report at their first use
                    self.vectors.verify(video.first_label, video.frame_count, video.checksum, video.path)
                    self._verified.add(video.first_label)

    def _stored(self, video_id: str) -> VideoRow:
        self._refresh()
        if (video := self._videos.get(video_id)) is None:
            raise WorkspaceError(f'{self.folder}: no stored video {video_id[:12]}')
        return video

    def cues(self, video_id: str) -> list[CueDoc]:
        return self.catalog.cues(video_id)

    def video_means(self) -> tuple[list[str], np.ndarray]:
        self._refresh()
        if self._means is None:
            ids = [v.id for v in self._order]
            means = (video_means(self.catalog, self._order, self.vectors.dim, self._rows) if ids
                     else np.zeros((0, self.vectors.dim if self.vectors else 1)))
            self._means = ids, unit_rows(means)
        return self._means

    def nearest(self, query: np.ndarray, k: int) -> Neighbours:
        vectors = self._searchable_vectors()
        return self._neighbours(*(vectors.nearest(query, k) if vectors else (np.empty(0, np.int64),) * 2))

    def nearest_many(self, queries: np.ndarray, k: int, near: bool = False) -> list[Neighbours]:
        vectors = self._searchable_vectors()
        found = vectors.nearest_many(queries, k, near) if vectors else (np.empty((len(queries), 0), np.int64),) * 2
        return [self._neighbours(labels, scores) for labels, scores in zip(*found)]

    def _neighbours(self, labels: np.ndarray, scores: np.ndarray) -> Neighbours:
        owners = np.searchsorted(self._first_labels, labels, side='right') - 1
        keep = (owners >= 0) & (labels >= 0)
        owners, labels, scores = owners[keep], labels[keep], scores[keep]
        return Neighbours([self._order[o].id for o in owners], labels - self._first_labels[owners], scores)

    def search_cues(self, text: str, limit: int) -> list:
        return cue_search.search(self.catalog.cue_table, text, limit)  # the catalog's own reads: no cache

    def nearest_cues(self, query: np.ndarray, k: int) -> list:
        return self.catalog.cue_table.nearest(query, k)

    def image_space(self) -> ImageSpace | None:
        identity = self.catalog.info('image_space')
        return ImageSpace(identity, self.catalog.info('image_model')) if identity else None

    def _searchable_vectors(self) -> VectorStore | None:
        """The vectors with their index loaded (rebuilt when missing or damaged); None while empty."""
        self._refresh()
        if self.vectors is None or self.vectors.index is not None:
            return self.vectors
        with self.catalog.snapshot():  # the videos, labels and generation of one commit
            self._refresh()
            committed, generation = self.catalog.next_label(), self.catalog.generation()
        live = np.zeros(committed, dtype=bool)
        for video in self._order:
            live[video.first_label:video.first_label + video.frame_count] = True
        self._dirty = self.vectors.open_index(live, generation, before_rebuild=self._verify_rows)
        if self._dirty and not self.lock.held:
            self.save()  # a reader that rebuilt the index saves it when nobody is writing
        return self.vectors

    def _add_to_index(self, video: VideoRow) -> None:
        first = video.first_label
        self.vectors.add_to_index(np.arange(first, first + video.frame_count), self._rows(video))
        self._dirty = True

    def _verify_rows(self) -> None:
        """Every video's rows against its checksum: an index is never rebuilt from damaged rows."""
        for video in self._order:
            self._rows(video)

    def _rows(self, video: VideoRow) -> np.ndarray:
        """A video's embeddings, checked against the checksum recorded when it was added (once per process)."""
        rows = self.vectors.read(video.first_label, video.frame_count, self._unverified(video), owner=video.path)
        self._verified.add(video.first_label)
        return rows

    def _unverified(self, video: VideoRow) -> int:
        """The checksum to check a video's rows against: -1 once they matched it in this process."""
        return -1 if video.first_label in self._verified else video.checksum

    # ------------------------------------------------------------------ writing

    def add(self, video: VideoRecord, frames: Frames, shots: list[float], cues: list[CueDoc],
            space: ImageSpace) -> bool:
        embeddings = np.asarray(frames.vectors, dtype=np.float32)
        if not len(embeddings) or not np.isfinite(embeddings).all():
            raise WorkspaceError(f'{Path(video.path).name}: its keyframe embeddings are missing or not finite numbers')
        with self.lock.hold():
            self._start_writing()
            if video.id in self._videos:
                remove_staged(frames.thumbnails)
                return False
            check_space(self.folder, self.image_space(), space)
            vectors = self._vectors_of(embeddings.shape[1])
            first, checksum = vectors.append(embeddings)
            try:
                thumbnails = place_thumbnails(self.thumbnails, video.id, frames.thumbnails)
            except OSError as e:
                vectors.truncate(first)
                raise storage_error(self.thumbnails / video.id, 'cannot store the thumbnails', e) from e
            row = VideoRow(video.id, video.path, float(video.duration), float(video.fps), int(video.width),
                           int(video.height), video.added or now_iso(), first, len(embeddings), int(video.size),
                           int(video.mtime_ns), checksum)
            try:
                self.catalog.add_video(row, list(frames.timestamps), thumbnails, list(shots), cues,
                                       embeddings.mean(axis=0), dim=embeddings.shape[1],
                                       space={'image_space': space.identity, 'image_model': space.name})
            except BaseException:
                vectors.truncate(first)
                shutil.rmtree(self.thumbnails / video.id, ignore_errors=True)
                raise
            vectors.forget_adding()
            self._follow({**self._videos, row.id: row})  # data_version ignores our own commits: by hand
            return True

    def delete(self, video_id: str) -> bool:
        with self.lock.hold():
            self._start_writing()
            video = self._videos.get(video_id)
            if video is None:
                return False
            self.catalog.delete_video(video_id)
            self._follow({k: v for k, v in self._videos.items() if k != video_id})  # our own commit: by hand
            shutil.rmtree(self.thumbnails / video_id, ignore_errors=True)
            return True

    def save(self) -> None:
        """Persist the index if this process changed it, unless another process is writing (it will)."""
        if not self._dirty or self.vectors is None or self.vectors.index is None:
            return
        took = not self.lock.held and self.lock.try_acquire()
        if not (took or self.lock.held):
            return
        try:
            self._refresh()
            self.vectors.save_index(self.catalog.generation())
            self._dirty = False
        finally:
            if took:
                self.lock.release()

    def close(self) -> None:
        try:
            self.save()
        finally:
            self.lock.release()
            if self.vectors is not None:
                self.vectors.close()
            self.catalog.close()

    def _vectors_of(self, dim: int) -> VectorStore:
        if self.vectors is None:
            self.vectors = VectorStore(self.folder, dim, self.index_config)
            self.vectors.drop_interrupted(self.catalog.next_label())
            self.vectors.open_index(np.zeros(self.catalog.next_label(), dtype=bool), self.catalog.generation(),
                                    before_rebuild=self._verify_rows)
        if dim != self.vectors.dim:
            raise WorkspaceError(f'{self.folder}: holds {self.vectors.dim}-dimensional embeddings, this model '
                                 f'gives {dim}: index with the same model or use another workspace')
        return self.vectors

    def _start_writing(self) -> None:
        """Under the lock: catch up, and drop what a killed writer left (rows, index, thumbnails). The
        full check runs at this process's first write, and again whenever rows show a crash since."""
        self._refresh()
        crashed = not self._recovered
        if crashed:
            check_agreement(self.catalog, self.vectors, self._order)
        if self.vectors is not None:
            crashed = self.vectors.drop_interrupted(self.catalog.next_label()) or crashed
            self.vectors.remove_partial_files()
            self._searchable_vectors()
        if crashed:
            remove_orphans(self.thumbnails, self._videos.keys())
        self._recovered = True


def _record(row: VideoRow, cue_count: int) -> VideoRecord:
    return VideoRecord(row.id, row.path, row.duration, row.fps, row.width, row.height, row.added, row.frame_count,
                       cue_count, row.size, row.mtime_ns)
