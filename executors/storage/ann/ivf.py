"""A faiss inverted-file index over the keyframe rows (`index: ivf` in flow.yml, the default).

Its layout follows the number of live vectors N. Below `exact_below` they sit in one list of their
float16 rows that every query scans: exact search, nothing to train (about 2 ms at 40,000 on one
core). From there on they are clustered into nlist = 4 * sqrt(N) lists (faiss's usual choice, rounded
down to a multiple of 64) by spherical k-means on a sample of rows, and each list holds compact codes:
a 4-bit product quantizer over pairs of dimensions (faiss's fast-scan layout, 128 bytes per 512-d
vector, no residuals). A query scans the codes of the `nprobe` lists whose centres are nearest to it,
keeps the RESCORED best, and scores those exactly from the float16 rows the store keeps memory-mapped,
so the scores returned are those of the rows on disk. Cheap codes buy many probes: a text query lands
across the modality gap from the images, where its true neighbours spread over many lists (at 1M CLIP-like
keyframes, recall@10: float16 lists, nprobe 64, 0.982 in 2.3 ms; these codes, nprobe 96, 0.986 in 1.4 ms).
Once N has grown four times over (the planned nlist has doubled), or fallen well below `exact_below`,
`outgrown` asks for a rebuild from the rows; so does an index saved with float16 lists (the layout
before compact codes), once, when it is loaded.

Deleted vectors are removed from their lists. Searching runs on the calling thread's one core;
training and adding use every core (faiss's OpenMP thread count is set right before each call, and
put back after a search: torch may share the runtime).
"""
import errno
import logging
import os
from pathlib import Path

import faiss
import numpy as np

from executors.storage.ann.base import IndexConfig, StoredRows, TrainingRows
from executors.vectors import float16_scores

log = logging.getLogger(__name__)

LIST_MULTIPLE = 64  # nlist is a multiple of this
TRAINING_POINTS_PER_LIST = 40  # k-means sample size per list (faiss warns below 39)
NEAR_LISTS = 4  # lists search_many probes when only near-copies are wanted: they sit in the query's nearest lists
QUERY_CHUNK = 2048  # queries scored against one list at a time in search_many
KMEANS_ITERATIONS = 10  # faiss's default is 25; 10 gives the same recall on the bench, 2.5x sooner
PQ_ITERATIONS = 15  # k-means iterations of each 2-d code book of 16 codes (faiss's default: 25)
RESCORED = 500  # candidates a query's codes pick, then scored exactly (1M CLIP-like, nprobe 96: recall 0.971 at 300)
DIMS_PER_CODE = 2  # each 4-bit code stands for this many dimensions (4: half the bytes, recall 0.83 at 500)
RESCORE_FLOATS = 1 << 24  # rows widened at once by search_many's rescoring (64 MB)


def planned_lists(live: int, exact_below: int) -> int:
    """How many lists `live` vectors call for: 1 (exact search) below `exact_below`, else ~4 * sqrt(live)
    (fewer where k-means would lack training points: only below ~24,000 vectors)."""
    if live < exact_below:
        return 1
    lists = min(int(4 * np.sqrt(live)), live // TRAINING_POINTS_PER_LIST)
    return max(LIST_MULTIPLE, lists // LIST_MULTIPLE * LIST_MULTIPLE)


class IvfIndex:
    """A faiss IVF index with labels = row numbers: float16 rows in one list (exact search), or
    IndexIVFPQFastScan codes in many lists with exact rescoring from `rows` (the store's float16 rows)."""

    def __init__(self, index: faiss.IndexIVF, config: IndexConfig, rows: StoredRows):
        self.index, self.exact_below, self.rows = index, config.exact_below, rows
        self.compact = isinstance(index, faiss.IndexIVFPQFastScan)
        self._flat_centres: faiss.Index | None = None
        index.nprobe = min(config.nprobe, index.nlist)

    @classmethod
    def create(cls, config: IndexConfig, dim: int, count: int, training_rows: TrainingRows,
               rows: StoredRows) -> 'IvfIndex':
        nlist = planned_lists(count, config.exact_below)
        if nlist == 1:
            index = _float16_lists(faiss.IndexFlatIP(dim), dim, nlist)
            index.quantizer.add(np.zeros((1, dim), dtype=np.float32))  # float16 codes need no training
            index.is_trained = True
            return cls(index, config, rows)
        sample = np.ascontiguousarray(training_rows(min(count, TRAINING_POINTS_PER_LIST * nlist)), dtype=np.float32)
        kmeans = _float16_lists(faiss.IndexFlatIP(dim), dim, nlist)
        kmeans.cp.niter, kmeans.cp.spherical = KMEANS_ITERATIONS, True  # unit vectors, inner product
        _use_every_core()
        kmeans.train(sample)
        # the list centres as float16: half the memory a query reads to pick its lists (0.31 -> 0.17 ms at 1M),
        # the same lists picked on the bench
        centres = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        centres.add(kmeans.quantizer.reconstruct_n(0, nlist))
        index = faiss.IndexIVFPQFastScan(centres, dim, nlist, _codes_per_vector(dim), 4, faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False  # one lookup table per query, not one per probed list
        # the centres are in place: this trains the product quantizer only, 256 k-means of 16 points in 2-d, each
        # too small for a thread pool (on 2 busy cores: 41 s at 20k with every core, 0.4 s with one)
        index.pq.cp.niter = PQ_ITERATIONS
        faiss.omp_set_num_threads(1)
        index.train(sample)
        return cls(index, config, rows)

    @classmethod
    def load(cls, config: IndexConfig, path: Path, dim: int, rows: StoredRows) -> 'IvfIndex':
        index = faiss.read_index(str(path))
        if not isinstance(index, (faiss.IndexIVFScalarQuantizer, faiss.IndexIVFPQFastScan)) or index.d != dim \
                or index.by_residual:
            raise RuntimeError(f'it is not an IVF index of {dim}-dimensional vectors')
        if isinstance(index, faiss.IndexIVFScalarQuantizer) and index.nlist > 1:
            log.warning('%s holds float16 lists (saved before compact codes): it is rebuilt from the rows', path)
        return cls(index, config, rows)

    def labels(self) -> np.ndarray:
        lists = self.index.invlists
        held = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                for i in range(self.index.nlist) if lists.list_size(i)]
        return np.concatenate(held).astype(np.int64) if held else np.empty(0, np.int64)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        _use_every_core()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if self.compact:  # fast-scan packs its codes on add_with_ids only: it assigns through the float32 centres
            searching, self.index.quantizer = self.index.quantizer, self._assigner()
            try:
                self.index.add_with_ids(vectors, labels)
            finally:
                self.index.quantizer = searching
            return
        _, lists = self._assigner().search(vectors, 1)
        self.index.add_core(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(labels), faiss.swig_ptr(lists))

    def _assigner(self) -> faiss.Index:
        """The list centres as float32 for adding: matrix products pick the same lists 4x sooner than
        the float16 centres searches read (a rebuild at 1M: 38 s instead of 107)."""
        if self._flat_centres is None:
            centres = faiss.downcast_index(self.index.quantizer)
            if not isinstance(centres, faiss.IndexFlat):  # float16 centres (an index saved with float32 ones has them)
                flat = faiss.IndexFlatIP(self.index.d)
                flat.add(centres.reconstruct_n(0, self.index.nlist))
                centres = flat
            self._flat_centres = centres
        return self._flat_centres

    def remove(self, labels: np.ndarray) -> None:
        if len(labels):
            self.index.remove_ids(np.ascontiguousarray(labels, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # one query needs no thread pool; the count is restored after, as torch may share faiss's OpenMP
        # runtime (imported first, it does): left at 1, the exact scores that follow ran on one core
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, labels = self.index.search(query, max(RESCORED, 2 * k) if self.compact else k)
        finally:
            faiss.omp_set_num_threads(threads)
        found = labels[0] >= 0  # the probed lists may hold fewer than k
        if not self.compact:
            return labels[0][found], scores[0][found]
        candidates = np.sort(labels[0][found])  # in row order: the rows file is read forward
        exact = float16_scores(self.rows()[candidates], query[0])  # torch, where loaded: 500 rows in 0.11 ms, numpy 0.35
        best = np.argsort(-exact, kind='stable')[:k]
        return candidates[best], exact[best]

    def search_many(self, queries: np.ndarray, k: int, near: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """search() of every row of `queries` (with `near`, probing NEAR_LISTS lists and rescoring 2k)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not len(queries) or not k:
            return np.full((len(queries), k), -1, dtype=np.int64), np.full((len(queries), k), -np.inf, dtype=np.float32)
        _use_every_core()
        nprobe = min(NEAR_LISTS, self.index.nprobe) if near else self.index.nprobe
        if self.compact:
            return self._rescored_many(queries, k, nprobe, 2 * k if near else max(RESCORED, 2 * k))
        return self._scanned_many(queries, k, nprobe)

    def _rescored_many(self, queries: np.ndarray, k: int, nprobe: int, wanted: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's `wanted` best by their codes, scored exactly from the rows a chunk of queries at a time."""
        _, candidates = self.index.search(queries, wanted, params=faiss.SearchParametersIVF(nprobe=nprobe))
        rows, chunk = self.rows(), max(1, RESCORE_FLOATS // (wanted * self.index.d))
        scores = np.empty(candidates.shape, dtype=np.float32)
        for first in range(0, len(queries), chunk):
            part = candidates[first:first + chunk]
            widened = rows[np.maximum(part, 0)].astype(np.float32)
            scores[first:first + chunk] = np.einsum('qcd,qd->qc', widened, queries[first:first + chunk])
        scores[candidates < 0] = -np.inf
        return _best_first(candidates, scores, k)

    def _scanned_many(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The float16 lists, list by list: each list's rows widened once and scored against all of its
        queries in one matrix product (faiss's scan of float16 codes runs one query at a time without SIMD
        in the wheel: 14 ms a query at 80k vectors, nprobe 32, where this takes well under 1 ms on a batch)."""
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        labels = np.full((len(queries), k), -1, dtype=np.int64)
        _, probed = self._assigner().search(queries, nprobe)
        query_of = np.repeat(np.arange(len(queries)), probed.shape[1])
        order = np.argsort(probed.ravel(), kind='stable')
        lists, starts = np.unique(probed.ravel()[order], return_index=True)
        for number, first, last in zip(lists, starts, np.append(starts[1:], len(order))):
            if number >= 0:
                self._scan(int(number), query_of[order[first:last]], queries, scores, labels)
        return _best_first(labels, scores, k)  # each query's k kept unordered until here

    def _scan(self, number: int, asking: np.ndarray, queries: np.ndarray, scores: np.ndarray,
              labels: np.ndarray) -> None:
        """Merge list `number`'s matches for the queries `asking` into their best k so far (unordered)."""
        lists, k = self.index.invlists, scores.shape[1]
        size = lists.list_size(number)
        if not size:
            return
        ids = faiss.rev_swig_ptr(lists.get_ids(number), size).copy()
        rows = faiss.rev_swig_ptr(lists.get_codes(number), size * self.index.code_size).view(np.float16)
        rows = rows.reshape(size, self.index.d).astype(np.float32)
        for chunk in range(0, len(asking), QUERY_CHUNK):  # bounds the score matrix of a big list (exact search)
            rows_of = asking[chunk:chunk + QUERY_CHUNK]
            merged = np.hstack([scores[rows_of], queries[rows_of] @ rows.T])
            keep = np.argpartition(merged, -k, axis=1)[:, -k:]
            scores[rows_of] = np.take_along_axis(merged, keep, axis=1)
            labels[rows_of] = np.where(keep < k, np.take_along_axis(labels[rows_of], np.minimum(keep, k - 1), axis=1),
                                       ids[np.maximum(keep - k, 0)])

    def outgrown(self, live: int) -> bool:
        planned = planned_lists(live, self.exact_below)
        if self.index.nlist == 1:
            return planned > 1
        if not self.compact:  # float16 lists: an index saved before compact codes
            return True
        return planned >= 2 * self.index.nlist or live < self.exact_below // 2

    def write(self, path: Path) -> None:
        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as e:  # faiss reports a failed write with the C library's reason in its message
            reason = str(e).strip().splitlines()[-1]
            raise OSError(errno.ENOSPC if 'No space' in reason else errno.EIO, f'faiss: {reason}') from e
        if path.stat().st_size < self.index.ntotal * (self.index.code_size + 8):  # a buffered write lost at close
            raise OSError(errno.ENOSPC, 'the saved index is incomplete (disk full?)')


def _best_first(labels: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best labels and scores, best first; -1 labels where a score is not finite (nothing found)."""
    best = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    labels, scores = np.take_along_axis(labels, best, axis=1), np.take_along_axis(scores, best, axis=1)
    labels[~np.isfinite(scores)] = -1
    return labels, scores


def _codes_per_vector(dim: int) -> int:
    return dim // DIMS_PER_CODE if dim % (2 * DIMS_PER_CODE) == 0 else dim  # fast-scan packs an even count of codes


def _float16_lists(quantizer: faiss.Index, dim: int, nlist: int) -> faiss.IndexIVFScalarQuantizer:
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    index.by_residual = False
    return index


def _use_every_core() -> None:
    faiss.omp_set_num_threads(os.cpu_count() or 1)
