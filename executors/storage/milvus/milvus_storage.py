"""The Milvus backend: the same library in Milvus (Milvus Lite, Standalone or Distributed, one client).

Three collections (names start with `prefix`): `videos` (one row per video: metadata, shot cuts,
the image tower that made its vectors, its mean vector for ranking whole videos), `frames` (one
row per keyframe: video id, frame index, timestamp, thumbnail name, vector; HNSW, inner product)
and `cues` (timed text with its search keys and text embedding, ranked by the rules every backend
shares: executors/storage/milvus/cues.py, executors/retrieval/cue_search.py). Every machine that reaches the URI shares the library.

Atomic per video: `add` writes the video's row with state 'pending', then its frames and cues,
then the same row with state 'stored': that upsert is the commit. Readers trust only stored rows
(a nearest keyframe of a pending video is dropped), so a video is searchable completely or not at
all. Rows have deterministic keys (`<video_id>:<index>`), so a second writer of the same video
rewrites identical rows; a crashed writer's pending rows (older than `orphan_grace` seconds, so
never another live writer's) are removed by the next writer.

Thumbnails are JPEG files under `<workspace>/thumbnails/<video_id>/`; the frame rows hold their
names relative to that folder, and each machine reads them under its own workspace: on a cluster
the workspace's thumbnails folder is a shared mount (NFS, or the object store Milvus uses, mounted).
They stay out of Milvus because they weigh ten times the vectors (about 10 KB against 2 KB a
keyframe) and Milvus keeps loaded fields in its query nodes.
"""
import collections
import functools
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from executors.documents import SCREEN, CueDoc
from executors.errors import WorkspaceError
from executors.retrieval import cue_search
from executors.storage.milvus.cues import MilvusCues, cue_rows
from executors.storage.milvus.schema import VIDEO_FIELDS, connect, create_collections, record, reason, unpack, video_row
from executors.media.thumbnails import older_than, place_thumbnails, remove_dead_staging, remove_staged
from executors.storage.interface import Frames, ImageSpace, Neighbours, Storage, VideoRecord

log = logging.getLogger(__name__)

ANALYZER = {'tokenizer': 'whitespace'}  # cue keys are made in Python (executors/retrieval/cue_text.py)
QUERY_LIMIT = 16384  # Milvus caps offset + limit of one query
WRITE_BATCH = 1000  # rows per upsert
CACHED_VIDEOS = 256  # videos whose keyframes stay in memory (search scores a few videos' every keyframe)
# pymilvus runs one embedded Milvus Lite server per file and process, shared by every client of that file:
# the last MilvusStorage of a file to close stops it (releasing the file for other processes)
_EMBEDDED: collections.Counter = collections.Counter()
_EMBEDDED_LOCK = threading.Lock()


def _reports_errors(method: Callable) -> Callable:
    """Milvus's errors met mid-operation become a WorkspaceError naming the server and the cause."""
    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        from pymilvus.exceptions import MilvusException

        try:
            return method(self, *args, **kwargs)
        except MilvusException as e:
            raise WorkspaceError(f'{self.location}: Milvus refused {method.__name__} ({reason(e)})') from e
    return checked


class MilvusStorage(Storage):
    """A library in Milvus at `uri`; see the module docstring.

    Args:
        uri: a file path (Milvus Lite, embedded; one process at a time) or http://host:19530
            (Milvus Standalone or Distributed, or `milvus-lite server`; any number of processes).
        token: 'user:password' or an API key, when the server requires one.
        workspace: the local folder whose thumbnails/ holds the keyframes' JPEGs (a shared mount on a cluster).
        prefix: start of the collections' names, so several libraries can share one Milvus.
        M, ef_construction, ef_search: the HNSW index's knobs (as the hnswlib backend's).
        orphan_grace: seconds after which a pending (never committed) video is a crashed writer's.
        timeout: seconds to wait for the server when connecting.
    """

    def __init__(self, uri: str, *, token: str = '', workspace: str | Path = 'data/workspace', prefix: str = 'vced_',
                 M: int = 16, ef_construction: int = 100, ef_search: int = 256, orphan_grace: float = 3600.0,
                 timeout: float = 30.0):
        self.location = uri
        self.thumbnails = Path(workspace) / 'thumbnails'
        self.names = {kind: f'{prefix}{kind}' for kind in ('videos', 'frames', 'cues')}
        self.index_params = {'M': M, 'efConstruction': ef_construction}
        self.ef_search, self.orphan_grace = ef_search, orphan_grace
        self.client = connect(uri, token, timeout)
        if '://' not in uri:
            with _EMBEDDED_LOCK:
                _EMBEDDED[str(Path(uri).expanduser().resolve())] += 1
        self._ready = False  # the collections exist
        self._cleaned = False  # this process removed what crashed writers left
        self._frames: dict[str, Frames] = {}  # a stored video's keyframes never change (its id is its content)
        self._cues = MilvusCues(self.client, self.names['cues'], uri, self._stored_ids)

    # ---------------------------------------------------------------- reading

    def _exists(self) -> bool:
        """Whether the collections exist; the first time they do, load them (a reopened Milvus Lite file,
        or a restarted server, holds them released, and a released collection cannot be searched)."""
        if not self._ready and all(self.client.has_collection(name) for name in self.names.values()):
            for name in self.names.values():
                self.client.load_collection(name)
            self._ready = True
        return self._ready

    @_reports_errors
    def videos(self) -> list[VideoRecord]:
        rows = self._rows('videos', 'state == "stored"', VIDEO_FIELDS) if self._exists() else []
        return [record(row) for row in sorted(rows, key=lambda row: (row['seq'], row['id']))]

    @_reports_errors
    def video(self, video_id: str) -> VideoRecord | None:
        row = self._stored(video_id, VIDEO_FIELDS)
        return record(row) if row else None

    def find(self, video_id: str = '', path: str = '') -> list[VideoRecord]:
        if video_id:
            return [v for v in self.videos() if v.id.startswith(video_id.lower())]
        return [v for v in self.videos() if v.path in (path, os.path.abspath(path))]

    @_reports_errors
    def frames(self, video_id: str) -> Frames:
        video = self._stored(video_id, ['frame_count'])
        if video is None:
            self._frames.pop(video_id, None)
            raise WorkspaceError(f'{self.location}: no stored video {video_id[:12]}')
        if video_id not in self._frames:
            count = video['frame_count']
            rows = self._rows('frames', f'video_id == "{video_id}" and frame < {count}',
                              ['frame', 'timestamp', 'thumbnail', 'vector'])
            rows.sort(key=lambda row: row['frame'])
            if [row['frame'] for row in rows] != list(range(count)):
                raise WorkspaceError(f'{self.location}: video {video_id[:12]} has {len(rows)} of its {count} keyframes: '
                                     f'delete it and index it again')
            if len(self._frames) >= CACHED_VIDEOS:
                del self._frames[next(iter(self._frames))]  # the longest cached
            self._frames[video_id] = Frames(np.array([row['timestamp'] for row in rows], dtype=np.float64),
                                            np.array([row['vector'] for row in rows], dtype=np.float32),
                                            [str(self.thumbnails / row['thumbnail']) if row['thumbnail'] else ''
                                             for row in rows])
        return self._frames[video_id]

    @_reports_errors
    def shots(self, video_id: str) -> list[float]:
        row = self._stored(video_id, ['shots'])
        return unpack(row['shots']) if row else []

    @_reports_errors
    def cues(self, video_id: str) -> list[CueDoc]:
        if self._stored(video_id, ['id']) is None:
            return []
        rows = self._rows('cues', f'video_id == "{video_id}"', ['cue', 'start', 'end', 'text', 'source', 'language'])
        return [CueDoc(video_id=video_id, start=row['start'], end=row['end'], text=row['text'], source=row['source'],
                       language=row['language']) for row in sorted(rows, key=lambda row: row['cue'])]

    @_reports_errors
    def screen_counts(self) -> dict[str, int]:
        stored = {video.id for video in self.videos()}
        if not stored:  # the collections may not exist yet
            return {}
        screen = self._rows('cues', f'source == "{SCREEN}"', ['video_id'])
        counts = collections.Counter(row['video_id'] for row in screen)
        return {video_id: count for video_id, count in counts.items() if video_id in stored}

    @_reports_errors
    def video_means(self) -> tuple[list[str], np.ndarray]:
        rows = self._rows('videos', 'state == "stored"', ['seq', 'mean']) if self._exists() else []
        if not rows:
            return [], np.zeros((0, self._dim() or 1), np.float32)
        rows.sort(key=lambda row: (row['seq'], row['id']))
        means = np.array([row['mean'] for row in rows], dtype=np.float32)
        return [row['id'] for row in rows], means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)

    @_reports_errors
    def nearest(self, query: np.ndarray, k: int) -> Neighbours:
        if k < 1 or not self._exists():
            return Neighbours([], np.empty(0, np.int64), np.empty(0, np.float32))
        limit = min(k, QUERY_LIMIT)
        hits = self.client.search(self.names['frames'], data=[np.asarray(query, np.float32).ravel().tolist()],
                                  anns_field='vector', limit=limit, output_fields=['video_id', 'frame'],
                                  search_params={'metric_type': 'IP', 'params': {'ef': max(self.ef_search, limit)}})[0]
        stored = self._stored_ids({hit['entity']['video_id'] for hit in hits})
        hits = [hit for hit in hits if hit['entity']['video_id'] in stored]
        return Neighbours([hit['entity']['video_id'] for hit in hits],
                          np.array([hit['entity']['frame'] for hit in hits], dtype=np.int64),
                          np.array([hit['distance'] for hit in hits], dtype=np.float32))

    @_reports_errors
    def search_cues(self, text: str, limit: int) -> list[cue_search.CueHit]:
        if not text.strip() or limit < 1 or not self._exists():
            return []
        self._cues.check()
        return cue_search.search(self._cues, text, limit)

    @_reports_errors
    def nearest_cues(self, query: np.ndarray, k: int) -> list[tuple[cue_search.CueRow, float]]:
        if not self._exists():
            return []
        self._cues.check()
        return self._cues.nearest(query, k)

    @_reports_errors
    def image_space(self) -> ImageSpace | None:
        rows = self.client.query(self.names['videos'], filter='state == "stored"', output_fields=['space', 'space_name'],
                                 limit=1) if self._exists() else []
        return ImageSpace(rows[0]['space'], rows[0]['space_name']) if rows and rows[0]['space'] else None

    def _stored(self, video_id: str, fields: list[str]) -> dict | None:
        if not self._exists() or not video_id:
            return None
        rows = self.client.get(self.names['videos'], ids=[video_id], output_fields=[*fields, 'state'])
        return rows[0] if rows and rows[0]['state'] == 'stored' else None

    def _stored_ids(self, video_ids: set[str]) -> set[str]:
        rows = self.client.get(self.names['videos'], ids=sorted(video_ids), output_fields=['state']) if video_ids else []
        return {row['id'] for row in rows if row['state'] == 'stored'}

    def _rows(self, kind: str, expression: str, fields: list[str]) -> list[dict]:
        """Every row matching `expression`, past Milvus's cap on one query."""
        rows = self.client.query(self.names[kind], filter=expression, output_fields=fields, limit=QUERY_LIMIT)
        if len(rows) < QUERY_LIMIT:
            return rows
        rows, pages = [], self.client.query_iterator(self.names[kind], batch_size=4096, filter=expression,
                                                     output_fields=fields)
        while page := pages.next():
            rows += page
        pages.close()
        return rows

    def _dim(self) -> int:
        if not self._exists():
            return 0
        fields = self.client.describe_collection(self.names['frames'])['fields']
        return next(int(f['params']['dim']) for f in fields if f['name'] == 'vector')

    # ---------------------------------------------------------------- writing

    @_reports_errors
    def add(self, video: VideoRecord, frames: Frames, shots: list[float], cues: list[CueDoc],
            space: ImageSpace) -> bool:
        vectors = np.asarray(frames.vectors, dtype=np.float32)
        if not len(vectors) or vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise WorkspaceError(f'{Path(video.path).name}: its keyframe embeddings are missing or not finite numbers')
        if not self._exists():
            create_collections(self.client, self.names, vectors.shape[1], self.index_params, ANALYZER)
            self._ready = True
        if (dim := self._dim()) != vectors.shape[1]:
            raise WorkspaceError(f'{self.location}: holds {dim}-dimensional embeddings, this model gives '
                                 f'{vectors.shape[1]}: index with the same model or use another library')
        self._remove_orphans()
        if self._stored(video.id, ['id']):
            remove_staged(frames.thumbnails)
            return False
        stored = self.image_space()
        if stored and space.identity and stored.identity != space.identity:
            raise WorkspaceError(f'{self.location}: holds vectors of {stored.describe()}, not of {space.describe()}: '
                                 f'use that model here, or index with this one into another library')
        self._cues.check()
        row = video_row(video, len(vectors), sum(1 for c in cues if c.text.strip()), shots, vectors.mean(axis=0), space)
        self.client.upsert(self.names['videos'], [{**row, 'state': 'pending'}])
        try:
            names = self._place_thumbnails(video.id, frames.thumbnails)  # relative to thumbnails/
            now = int(time.time())
            self._upsert('frames', [{'id': f'{video.id}:{i}', 'video_id': video.id, 'frame': i, 'timestamp': float(t),
                                     'thumbnail': names[i] if i < len(names) else '', 'written': now,
                                     'vector': vectors[i].tolist()} for i, t in enumerate(frames.timestamps)])
            self._upsert('cues', cue_rows(video.id, cues, vectors.shape[1], now))
            self.client.upsert(self.names['videos'], [{**row, 'state': 'stored'}])  # the commit
        except BaseException:
            self._erase(video.id)
            raise
        return True

    @_reports_errors
    def delete(self, video_id: str) -> bool:
        if self._stored(video_id, ['id']) is None:
            return False
        self.client.delete(self.names['videos'], ids=[video_id])  # gone for readers from here on
        self._erase(video_id)
        return True

    def _upsert(self, kind: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), WRITE_BATCH):
            self.client.upsert(self.names[kind], rows[start:start + WRITE_BATCH])

    def _erase(self, video_id: str) -> None:
        """Remove a video's frames, cues, pending row and thumbnails (after its stored row is gone)."""
        for kind in ('frames', 'cues'):
            self.client.delete(self.names[kind], filter=f'video_id == "{video_id}"')
        self.client.delete(self.names['videos'], filter=f'id == "{video_id}" and state == "pending"')
        self._frames.pop(video_id, None)
        shutil.rmtree(self.thumbnails / video_id, ignore_errors=True)

    def _remove_orphans(self) -> None:
        """Once per process: erase videos left pending longer than `orphan_grace` (their writer died)."""
        if self._cleaned:
            return
        before = time.time_ns() - int(self.orphan_grace * 1e9)
        for row in self._rows('videos', f'state == "pending" and seq < {before}', ['id']):
            log.info('%s: removing the rows of an interrupted add of video %s', self.location, row['id'][:12])
            self._erase(row['id'])
        remove_dead_staging(self.thumbnails, older_than(self.orphan_grace))
        self._cleaned = True

    def _place_thumbnails(self, video_id: str, thumbnails: list[str]) -> list[str]:
        try:
            placed = place_thumbnails(self.thumbnails, video_id, thumbnails)
        except OSError as e:
            raise WorkspaceError(f'{self.thumbnails / video_id}: cannot store the thumbnails ({e.strerror or e})') from e
        return [str(Path(t).relative_to(self.thumbnails)) if t else '' for t in placed]

    def close(self) -> None:
        """Disconnect; for a Milvus Lite file, also stop this process's embedded server, so that another
        process can open the file (pymilvus keeps it running, and the file locked, until exit)."""
        self.client.close()
        if '://' not in self.location:
            path = str(Path(self.location).expanduser().resolve())
            with _EMBEDDED_LOCK:
                _EMBEDDED[path] -= 1
                last = not _EMBEDDED[path]
            if last:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(path)
