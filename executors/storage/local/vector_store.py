"""Keyframe embeddings: float16 rows on disk (the source of truth) and the nearest-neighbour index
derived from them (executors/storage/ann/base.py: faiss IVF or an hnswlib graph, flow.yml's `index:`).

A vector's label is its row in `embeddings.f16`. Rows are only ever appended; rows of deleted
videos stay on disk unused (removed from the index), so a label is never reused. Each index kind
has its own file; a workspace opened with another kind builds the configured one from the rows
and leaves the other kind's file as it was (brought up to date if that kind is configured again;
delete it to reclaim the disk). torch widens many float16 rows at once where the process has it (executors.vectors.loaded_torch).
"""
import json
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from executors.storage.ann.base import INDEX_FILES, AnnIndex, IndexConfig
from executors.storage.ann.factory import load_index, new_index
from executors.errors import WorkspaceError
from executors.storage.local.durable import file_crc32, storage_error, write_durably
from executors.vectors import float16_scores, loaded_torch

log = logging.getLogger(__name__)

ROWS_PER_READ = 65536  # rows read at a time while rebuilding the index
NUMPY_WIDENS_BELOW = 256  # rows; numpy widens float16 faster than torch up to a few hundred rows (0.5 vs 1.8 ms at 75)


class VectorStore:
    """Append-only float16 embeddings plus an inner-product index over the live ones.

    `config` says which index (see the Indexer). It is opened by open_index(); if its file is
    missing, damaged or newer than the catalog it is rebuilt from the embeddings.
    """

    def __init__(self, folder: Path, dim: int, config: IndexConfig = IndexConfig()):
        self.folder = folder
        self.dim = dim
        self.config = config
        self.rows_path = folder / 'embeddings.f16'
        self.adding_path = folder / 'adding.json'  # the rows an add is writing, until its video is committed
        self.index_path = folder / config.file_name()
        self.check_path = self.index_path.with_suffix('.json')  # the saved index's size, crc32 and catalog generation
        self.row_bytes = dim * np.dtype(np.float16).itemsize
        # unbuffered: a write the disk refuses leaves nothing behind in a buffer to fail again at the next flush
        self._file = open(self.rows_path, 'a+b', buffering=0)  # noqa: SIM115 - appends, pread; closed by close()
        self.index: AnnIndex | None = None
        self._before_rebuild: Callable[[], None] = lambda: None
        self._scratch = threading.local()  # per thread: float16 rows read and widened by scores()
        self._map: np.ndarray | None = None  # the rows file mapped into memory, for scores()
        self.live_count = 0  # labels in the index and not removed

    # ------------------------------------------------------------------ the float16 rows

    def row_count(self) -> int:
        return os.fstat(self._file.fileno()).st_size // self.row_bytes

    def append(self, vectors: np.ndarray) -> tuple[int, int]:
        """Write `vectors` as float16 rows, durably; return the first one's label and the rows' crc32.

        First it notes which rows it is adding (adding.json), so that rows a killed writer left can be
        told apart from rows a newer catalog owns (a backup of catalog.sqlite put back): only the former
        are ever dropped. forget_adding() clears the note once the catalog holds the video."""
        first = self.row_count()
        data = np.ascontiguousarray(vectors, dtype=np.float16).tobytes()
        try:
            write_durably(self.adding_path, json.dumps({'first': first, 'count': len(vectors)}).encode())
            written = memoryview(data)
            while written:
                written = written[self._file.write(written):]
            os.fsync(self._file.fileno())
        except OSError as e:
            self.truncate(first)
            raise storage_error(self.rows_path, 'cannot store the embeddings', e) from e
        return first, zlib.crc32(data)

    def forget_adding(self) -> None:
        """The rows of the last append now belong to a committed video, or were dropped."""
        self.adding_path.unlink(missing_ok=True)

    def drop_interrupted(self, committed: int) -> bool:
        """Drop the rows past `committed` (the catalog's next label) that an interrupted add left; True when
        there were some. Rows past it that no add in progress wrote belong to a newer catalog than this one:
        WorkspaceError, and nothing is changed."""
        stored = self.row_count()
        if stored <= committed:
            self.forget_adding()
            return False
        try:
            adding = json.loads(self.adding_path.read_bytes())
            interrupted = adding['first'] == committed and stored <= committed + adding['count']
        except (OSError, ValueError, KeyError, TypeError):
            interrupted = False
        if not interrupted:
            raise WorkspaceError(
                f'{self.rows_path}: holds {stored} embeddings but {self.folder / "catalog.sqlite"} knows only '
                f'{committed}: the catalog is older than the embeddings (a backup put back?); put back the catalog '
                f'that goes with them, or index into a new --workspace; nothing was changed')
        log.info('%s: dropping %d embeddings of an interrupted add', self.rows_path, stored - committed)
        self.truncate(committed)  # also a partly written row
        return True

    def truncate(self, rows: int) -> None:
        """Drop every row from `rows` on (vectors no committed video owns), and the note of the add that wrote them."""
        os.ftruncate(self._file.fileno(), rows * self.row_bytes)
        self.forget_adding()

    def read(self, first: int, count: int, checksum: int = -1, owner: str = '') -> np.ndarray:
        """Rows first .. first + count - 1 (the keyframes of `owner`) as float32; WorkspaceError when
        they do not match `checksum` (-1: not checked)."""
        rows = self._read16(first, count, checksum, owner)
        torch = loaded_torch()
        if count < NUMPY_WIDENS_BELOW or torch is None:  # a video's keyframes: numpy (duplicates reads every video)
            return rows.astype(np.float32)
        return torch.from_numpy(rows).float().numpy()

    def scores(self, first: int, count: int, query: np.ndarray, checksum: int = -1, owner: str = '') -> np.ndarray:
        """The inner product of `query` with each of rows first .. first + count - 1, as read() would
        give them (float16 widened to float32), checked as read() does when `checksum` >= 0. Rows
        already checked are read in place from a memory map of the file (no copy); the widening goes
        through a buffer kept for the next call (no allocation, no page faults per search)."""
        scratch = self._scratch
        if getattr(scratch, 'wide', None) is None or len(scratch.wide) < count:
            scratch.rows = np.empty((max(count, 1024), self.dim), dtype=np.float16)
            scratch.wide = np.empty((max(count, 1024), self.dim), dtype=np.float32)
        if checksum >= 0:
            rows = self._read16(first, count, checksum, owner, into=scratch.rows[:count])
        else:
            rows = self._mapped(first, count)
        return float16_scores(rows, np.ascontiguousarray(query, dtype=np.float32), scratch.wide[:count])

    def _mapped(self, first: int, count: int) -> np.ndarray:
        """Rows first .. first + count - 1 as a view of the file mapped into memory (copy-on-write, so
        torch takes it as writable; nothing writes to it), mapped again once the file has grown."""
        rows = self._map
        if rows is None or len(rows) < first + count:
            stored = self.row_count()
            if stored < first + count:
                raise WorkspaceError(f'{self.rows_path}: too short: rows {first}..{first + count - 1} are missing')
            mapped = np.memmap(self.rows_path, dtype=np.float16, mode='c', shape=(stored, self.dim))
            self._map = rows = mapped.view(np.ndarray)  # slices of a plain array cost less than a memmap's
        return rows[first:first + count]

    def _stored(self) -> np.ndarray:
        """Every stored row, indexed by label, mapped into memory (an IVF index rescores its candidates there)."""
        return self._mapped(0, self.row_count())

    def _read16(self, first: int, count: int, checksum: int, owner: str, into: np.ndarray | None = None) -> np.ndarray:
        rows = np.empty((count, self.dim), dtype=np.float16) if into is None else into
        if os.preadv(self._file.fileno(), [rows], first * self.row_bytes) != rows.nbytes:
            raise WorkspaceError(f'{self.rows_path}: too short: rows {first}..{first + count - 1} are missing')
        if checksum >= 0 and zlib.crc32(rows) != checksum:
            raise self._damaged(first, count, owner)
        return rows  # torch widens float16 six times faster than numpy

    def verify(self, first: int, count: int, checksum: int, owner: str = '') -> None:
        """Check rows first .. first + count - 1 against `checksum` where scores() reads them (the memory
        map, whose pages are then in place for the first search); WorkspaceError when they differ."""
        if zlib.crc32(self._mapped(first, count)) != checksum:
            raise self._damaged(first, count, owner)

    def _damaged(self, first: int, count: int, owner: str) -> WorkspaceError:
        return WorkspaceError(f'{self.rows_path}: rows {first}..{first + count - 1} ({owner or "a video"}) are damaged '
                              f'(checksum mismatch): delete that video and index it again, or restore the workspace')

    # ------------------------------------------------------------------ the index

    def open_index(self, live: np.ndarray, generation: int, before_rebuild: Callable[[], None] = lambda: None) -> bool:
        """Load the saved index (or rebuild it) and bring it in line with `live`, a mask over labels.

        `generation` is the catalog's: an index saved at a later one (a catalog restored from a backup)
        may lack videos deleted after the backup, so it is rebuilt. True when the index now differs
        from the saved one. `before_rebuild` runs before every rebuild, now or later (to verify the rows).
        """
        self._before_rebuild = before_rebuild
        index = self._load_index(live, generation)
        if index is None:
            self._rebuild(np.flatnonzero(live))
            return True
        self.index = index
        held = np.zeros(len(live), dtype=bool)
        held[index.labels()] = True
        missing = np.flatnonzero(live & ~held)
        stale = np.flatnonzero(held & ~live)
        self.live_count = int((live & held).sum())
        if len(missing) or len(stale):
            log.info('%s: adding %d and removing %d vectors the saved index lacked', self.index_path,
                     len(missing), len(stale))
        index.remove(stale)
        self.add_labels(missing)
        return self._rebuild_if_outgrown() or bool(len(missing) or len(stale))

    def _load_index(self, live: np.ndarray, generation: int) -> AnnIndex | None:
        if not self.index_path.exists():
            kept = [name for kind, name in INDEX_FILES.items() if kind != self.config.kind and (self.folder / name).exists()]
            if kept:
                log.warning('%s is missing (this workspace was searched through %s): building the configured %s '
                            'index from %d stored embeddings; %s is left as it was', self.index_path, kept[0],
                            self.config.kind, live.sum(), kept[0])
            elif live.any():
                log.warning('%s is missing: rebuilding it from %d stored embeddings', self.index_path, live.sum())
            return None
        problem = self._check_saved_index(generation)
        if problem:
            log.warning('%s %s: rebuilding it from %d stored embeddings', self.index_path, problem, live.sum())
            return None
        try:
            index = load_index(self.config, self.index_path, self.dim, self._stored)
            labels = index.labels()
            if len(labels) and labels.max() >= len(live):
                raise RuntimeError(f'it holds label {labels.max()} but only {len(live)} embeddings are stored')
        except RuntimeError as e:
            log.warning('%s is unreadable (%s): rebuilding it from %d stored embeddings', self.index_path, e,
                        live.sum())
            return None
        return index

    def _rebuild(self, labels: np.ndarray) -> None:
        """A new index, laid out for `labels`, filled from their (verified) rows."""
        self._before_rebuild()
        self.index = new_index(self.config, self.dim, len(labels), lambda n: self._sample(labels, n), self._stored)
        self.live_count = 0
        self.add_labels(labels)

    def _rebuild_if_outgrown(self) -> bool:
        if not self.index.outgrown(self.live_count):
            return False
        log.info('%s: rebuilding it for %d vectors (laid out for another size)', self.index_path, self.live_count)
        self._rebuild(np.sort(self.index.labels()))
        return True

    def _sample(self, labels: np.ndarray, count: int) -> np.ndarray:
        """`count` of the rows `labels`, picked at random (the same ones each time), as float32."""
        picked = np.sort(np.random.default_rng(0).choice(labels, count, replace=False))
        rows = np.memmap(self.rows_path, dtype=np.float16, mode='r', shape=(self.row_count(), self.dim))
        return rows[picked].astype(np.float32)

    def add_labels(self, labels: np.ndarray) -> None:
        """Add the stored rows `labels` to the index, reading contiguous runs from disk."""
        for run in np.split(labels, np.flatnonzero(np.diff(labels) != 1) + 1) if len(labels) else []:
            for start in range(0, len(run), ROWS_PER_READ):
                first, count = int(run[start]), min(ROWS_PER_READ, len(run) - start)
                self.index.add(np.arange(first, first + count), self.read(first, count))
                self.live_count += count

    def add_to_index(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add one video's vectors; an index outgrown by them is rebuilt from the rows."""
        self.index.add(labels, vectors.astype(np.float16).astype(np.float32))  # exactly what is on disk
        self.live_count += len(labels)
        self._rebuild_if_outgrown()

    def remove_from_index(self, first: int, count: int) -> None:
        self.index.remove(np.arange(first, first + count))
        self.live_count -= count
        self._rebuild_if_outgrown()

    def nearest(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and inner products of (about) the `k` nearest live vectors, best first."""
        k = min(k, self.live_count)
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return self.index.search(query, k)

    def nearest_many(self, queries: np.ndarray, k: int, near: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """nearest() of each row of `queries` in one call (n x k; -1 labels where fewer were found); `near`:
        only near-copies are wanted (the index may search less widely)."""
        k = min(k, self.live_count)
        if k == 0:
            return np.full((len(queries), 0), -1, np.int64), np.empty((len(queries), 0), np.float32)
        return self.index.search_many(queries, k, near)

    def _check_saved_index(self, generation: int) -> str:
        """Why the saved index cannot be trusted ('' when it can): its recorded size and crc32 must match."""
        try:
            check = json.loads(self.check_path.read_text())
            size, crc, saved_at = int(check['size']), int(check['crc32']), int(check['generation'])
        except (OSError, ValueError, KeyError, TypeError):
            return f'has no valid check file ({self.check_path.name})'
        if saved_at > generation:
            return f'is newer than the catalog (generation {saved_at} > {generation}: a restored catalog?)'
        if self.index_path.stat().st_size != size or file_crc32(self.index_path) != crc:
            return 'is damaged (size or checksum differs from when it was saved)'
        return ''

    def save_index(self, generation: int) -> None:
        """Write the index and its check file through temporary files renamed into place (never
        half-written: a crash between the two renames only makes the next reader rebuild it)."""
        if self.index is None:
            return
        partial = self.index_path.with_suffix('.tmp')
        try:
            self.index.write(partial)
            with open(partial, 'rb') as f:
                os.fsync(f.fileno())
            check = self.check_path.with_name(self.check_path.name + '.tmp')
            check.write_text(json.dumps({'size': partial.stat().st_size, 'crc32': file_crc32(partial),
                                         'generation': generation}))
            os.replace(partial, self.index_path)
            os.replace(check, self.check_path)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise storage_error(self.index_path, 'cannot save the search index', e) from e

    def remove_partial_files(self) -> None:
        """What a writer killed while saving the index left (readers ignore it)."""
        self.index_path.with_suffix('.tmp').unlink(missing_ok=True)
        self.check_path.with_name(self.check_path.name + '.tmp').unlink(missing_ok=True)

    def close(self) -> None:
        self._map = None
        self._file.close()

