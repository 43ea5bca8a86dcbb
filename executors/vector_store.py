"""Keyframe embeddings: float16 rows on disk (the source of truth) and the HNSW graph derived from them.

A vector's label is its row in `embeddings.f16`. Rows are only ever appended; rows of deleted
videos stay on disk unused (marked deleted in the graph), so a label is never reused.
"""
import json
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import Callable

import hnswlib
import numpy as np
import torch

from executors.errors import WorkspaceError

log = logging.getLogger(__name__)

ROWS_PER_READ = 65536  # rows read at a time while rebuilding the graph
CHUNK = 1 << 24  # bytes hashed at a time when checking the saved graph


class VectorStore:
    """Append-only float16 embeddings plus an inner-product HNSW index (hnswlib) over the live ones.

    `M`, `ef_construction` and `ef_search` are hnswlib's knobs (see the Indexer). The graph is
    loaded on first use; if its file is missing or unreadable it is rebuilt from the embeddings.
    """

    def __init__(self, folder: Path, dim: int, *, M: int, ef_construction: int, ef_search: int):
        self.folder = folder
        self.dim = dim
        self.M, self.ef_construction, self.ef_search = M, ef_construction, ef_search
        self.rows_path = folder / 'embeddings.f16'
        self.graph_path = folder / 'hnsw.bin'
        self.check_path = folder / 'hnsw.json'  # the saved graph's size, crc32 and catalog generation
        self.row_bytes = dim * np.dtype(np.float16).itemsize
        self._file = open(self.rows_path, 'a+b')  # noqa: SIM115 - appends, pread, and closed by close()
        self.graph: hnswlib.Index | None = None
        self._scratch = threading.local()  # per thread: float16 rows read and widened by scores()
        self.live_count = 0  # labels in the graph not marked deleted

    # ------------------------------------------------------------------ the float16 rows

    def row_count(self) -> int:
        return os.fstat(self._file.fileno()).st_size // self.row_bytes

    def append(self, vectors: np.ndarray) -> tuple[int, int]:
        """Write `vectors` as float16 rows, durably; return the first one's label and the rows' crc32."""
        first = self.row_count()
        data = np.ascontiguousarray(vectors, dtype=np.float16).tobytes()
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            self.truncate(first)
            raise storage_error(self.rows_path, 'cannot store the embeddings', e) from e
        return first, zlib.crc32(data)

    def truncate(self, rows: int) -> None:
        """Drop every row from `rows` on (vectors no committed video owns)."""
        self._file.truncate(rows * self.row_bytes)
        self._file.flush()

    def read(self, first: int, count: int, checksum: int = -1, owner: str = '') -> np.ndarray:
        """Rows first .. first + count - 1 (the keyframes of `owner`) as float32; WorkspaceError when
        they do not match `checksum` (-1: not checked)."""
        return torch.from_numpy(self._read16(first, count, checksum, owner)).float().numpy()

    def scores(self, first: int, count: int, query: np.ndarray, checksum: int = -1, owner: str = '') -> np.ndarray:
        """The inner product of `query` with each of rows first .. first + count - 1, as read() would
        give them (float16 widened to float32), checked as read() does; the rows pass through
        buffers kept for the next call (no allocation, no page faults per search)."""
        scratch = self._scratch
        if getattr(scratch, 'rows', None) is None or len(scratch.rows) < count:
            scratch.rows = np.empty((max(count, 1024), self.dim), dtype=np.float16)
            scratch.wide = torch.empty((max(count, 1024), self.dim), dtype=torch.float32)
        rows = self._read16(first, count, checksum, owner, into=scratch.rows[:count])
        wide = scratch.wide[:count]
        wide.copy_(torch.from_numpy(rows))
        return torch.mv(wide, torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))).numpy()

    def _read16(self, first: int, count: int, checksum: int, owner: str, into: np.ndarray | None = None) -> np.ndarray:
        rows = np.empty((count, self.dim), dtype=np.float16) if into is None else into
        if os.preadv(self._file.fileno(), [rows], first * self.row_bytes) != rows.nbytes:
            raise WorkspaceError(f'{self.rows_path}: too short: rows {first}..{first + count - 1} are missing')
        if checksum >= 0 and zlib.crc32(rows) != checksum:
            raise WorkspaceError(f'{self.rows_path}: rows {first}..{first + count - 1} ({owner or "a video"}) are '
                                 f'damaged (checksum mismatch): delete that video and index it again, or restore '
                                 f'the workspace')
        return rows  # torch widens float16 six times faster than numpy

    # ------------------------------------------------------------------ the graph

    def open_graph(self, live: np.ndarray, generation: int, before_rebuild: Callable[[], None] = lambda: None) -> bool:
        """Load the saved graph (or rebuild it) and bring it in line with `live`, a mask over labels.

        `generation` is the catalog's: a graph saved at a later one (a catalog restored from a backup)
        may lack videos deleted after the backup, so it is rebuilt. True when the graph now differs
        from the saved one. `before_rebuild` runs first when the graph must be rebuilt (to verify the rows).
        """
        graph = self._load_graph(live, generation)
        if graph is None:
            before_rebuild()
            graph = self._new_graph(int(live.sum()))
            self.graph, self.live_count = graph, 0
            self.add_labels(np.flatnonzero(live))
            return True
        self.graph = graph
        in_graph = np.zeros(len(live), dtype=bool)
        in_graph[np.asarray(graph.get_ids_list(), dtype=np.int64)] = True
        missing = np.flatnonzero(live & ~in_graph)
        stale = np.flatnonzero(in_graph & ~live)
        self.live_count = int((live & in_graph).sum())
        if len(missing) or len(stale):
            log.info('%s: adding %d and removing %d vectors the saved graph lacked', self.graph_path,
                     len(missing), len(stale))
        for label in stale:
            try:
                graph.mark_deleted(int(label))
            except RuntimeError:  # already deleted when it was saved
                pass
        self.add_labels(missing)
        return bool(len(missing) or len(stale))

    def _load_graph(self, live: np.ndarray, generation: int) -> hnswlib.Index | None:
        if not self.graph_path.exists():
            if live.any():
                log.warning('%s is missing: rebuilding it from %d stored embeddings', self.graph_path, live.sum())
            return None
        problem = self._check_saved_graph(generation)
        if problem:
            log.warning('%s %s: rebuilding it from %d stored embeddings', self.graph_path, problem, live.sum())
            return None
        graph = hnswlib.Index(space='ip', dim=self.dim)
        try:
            graph.load_index(str(self.graph_path))
            labels = np.asarray(graph.get_ids_list(), dtype=np.int64)
            if len(labels) and labels.max() >= len(live):
                raise RuntimeError(f'it holds label {labels.max()} but only {len(live)} embeddings are stored')
        except RuntimeError as e:
            log.warning('%s is unreadable (%s): rebuilding it from %d stored embeddings', self.graph_path, e,
                        live.sum())
            return None
        graph.set_ef(self.ef_search)
        return graph

    def _new_graph(self, capacity: int) -> hnswlib.Index:
        graph = hnswlib.Index(space='ip', dim=self.dim)
        graph.init_index(max_elements=max(capacity, 1024), M=self.M, ef_construction=self.ef_construction)
        graph.set_ef(self.ef_search)
        return graph

    def add_labels(self, labels: np.ndarray) -> None:
        """Add the stored rows `labels` to the graph, reading contiguous runs from disk."""
        for run in np.split(labels, np.flatnonzero(np.diff(labels) != 1) + 1) if len(labels) else []:
            for start in range(0, len(run), ROWS_PER_READ):
                first, count = int(run[start]), min(ROWS_PER_READ, len(run) - start)
                self.add_to_graph(np.arange(first, first + count), self.read(first, count))

    def add_to_graph(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        needed = self.graph.element_count + len(labels)
        if needed > self.graph.get_max_elements():
            self.graph.resize_index(max(needed, int(self.graph.get_max_elements() * 1.5)))
        self.graph.add_items(vectors.astype(np.float16).astype(np.float32), labels)  # exactly what is on disk
        self.live_count += len(labels)

    def remove_from_graph(self, first: int, count: int) -> None:
        for label in range(first, first + count):
            self.graph.mark_deleted(label)
        self.live_count -= count

    def nearest(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and inner products of (about) the `k` nearest live vectors, best first."""
        k = min(k, self.live_count)
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        self.graph.set_ef(max(self.ef_search, k))  # hnswlib needs ef >= k
        while True:
            try:
                labels, distances = self.graph.knn_query(query.reshape(1, -1), k=k, num_threads=1)
                return labels[0].astype(np.int64), 1.0 - distances[0]
            except RuntimeError:  # fewer than k reachable: happens when most vectors are deleted
                if k == 1:
                    raise
                k //= 2

    def _check_saved_graph(self, generation: int) -> str:
        """Why the saved graph cannot be trusted ('' when it can): its recorded size and crc32 must match."""
        try:
            check = json.loads(self.check_path.read_text())
            size, crc, saved_at = int(check['size']), int(check['crc32']), int(check['generation'])
        except (OSError, ValueError, KeyError, TypeError):
            return 'has no valid check file (hnsw.json)'
        if saved_at > generation:
            return f'is newer than the catalog (generation {saved_at} > {generation}: a restored catalog?)'
        if self.graph_path.stat().st_size != size or _crc32(self.graph_path) != crc:
            return 'is damaged (size or checksum differs from when it was saved)'
        return ''

    def save_graph(self, generation: int) -> None:
        """Write the graph and its check file through temporary files renamed into place (never
        half-written: a crash between the two renames only makes the next reader rebuild it)."""
        if self.graph is None:
            return
        self.graph.resize_index(max(self.graph.element_count, 1))  # save no empty capacity
        partial = self.graph_path.with_suffix('.tmp')
        try:
            self.graph.save_index(str(partial))
            size = partial.stat().st_size
            if size < self.graph.element_count * self.dim * 4:  # hnswlib does not report a failed write
                raise OSError(28, 'the saved graph is incomplete (disk full?)')
            with open(partial, 'rb') as f:
                os.fsync(f.fileno())
            check = self.check_path.with_name(self.check_path.name + '.tmp')
            check.write_text(json.dumps({'size': size, 'crc32': _crc32(partial), 'generation': generation}))
            os.replace(partial, self.graph_path)
            os.replace(check, self.check_path)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise storage_error(self.graph_path, 'cannot save the search graph', e) from e

    def close(self) -> None:
        self._file.close()


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, 'rb') as f:
        while chunk := f.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def storage_error(path: Path, what: str, error: OSError) -> WorkspaceError:
    """One line for a failed write: the file, what failed and why (disk full, permissions)."""
    reason = 'the disk is full' if error.errno == 28 else (error.strerror or str(error))
    return WorkspaceError(f'{path}: {what}: {reason}; what was indexed before is kept')
