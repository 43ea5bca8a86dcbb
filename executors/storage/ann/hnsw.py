"""An HNSW graph (hnswlib) over the keyframe rows: `index: hnsw` in flow.yml.

Deleted vectors are only marked deleted (hnswlib cannot remove them); the graph grows as rows are
added. Recall at 1M synthetic keyframes: 0.87 at ef_search 256 (bench/indexer.py).
"""
from pathlib import Path

import hnswlib
import numpy as np

from executors.storage.ann.base import IndexConfig, StoredRows, TrainingRows

NEAR_EF = 64  # search effort of search_many when only near-copies are wanted: a greedy walk reaches them at once


class HnswIndex:
    """Inner-product hnswlib graph; M, ef_construction, ef_search as the Indexer documents them."""

    def __init__(self, graph: hnswlib.Index, config: IndexConfig, dim: int):
        self.graph, self.ef_search, self.dim = graph, config.ef_search, dim
        graph.set_ef(config.ef_search)

    @classmethod
    def create(cls, config: IndexConfig, dim: int, count: int, training_rows: TrainingRows,
               rows: StoredRows) -> 'HnswIndex':
        graph = hnswlib.Index(space='ip', dim=dim)
        graph.init_index(max_elements=max(count, 1024), M=config.M, ef_construction=config.ef_construction)
        return cls(graph, config, dim)

    @classmethod
    def load(cls, config: IndexConfig, path: Path, dim: int, rows: StoredRows) -> 'HnswIndex':
        graph = hnswlib.Index(space='ip', dim=dim)
        graph.load_index(str(path))
        return cls(graph, config, dim)

    def labels(self) -> np.ndarray:
        return np.asarray(self.graph.get_ids_list(), dtype=np.int64)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        needed = self.graph.element_count + len(labels)
        if needed > self.graph.get_max_elements():
            self.graph.resize_index(max(needed, int(self.graph.get_max_elements() * 1.5)))
        self.graph.add_items(vectors, labels)

    def remove(self, labels: np.ndarray) -> None:
        for label in labels:
            try:
                self.graph.mark_deleted(int(label))
            except RuntimeError:  # already deleted when it was saved
                pass

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.graph.set_ef(max(self.ef_search, k))  # hnswlib needs ef >= k
        while True:
            try:
                labels, distances = self.graph.knn_query(query.reshape(1, -1), k=k, num_threads=1)
                return labels[0].astype(np.int64), 1.0 - distances[0]
            except RuntimeError:  # fewer than k reachable: happens when most vectors are deleted
                if k == 1:
                    raise
                k //= 2

    def search_many(self, queries: np.ndarray, k: int, near: bool = False) -> tuple[np.ndarray, np.ndarray]:
        self.graph.set_ef(max(NEAR_EF if near else self.ef_search, k))
        labels, distances = self.graph.knn_query(np.asarray(queries, dtype=np.float32), k=k)
        return labels.astype(np.int64), 1.0 - distances

    def outgrown(self, live: int) -> bool:
        return False  # a graph grows with its vectors

    def write(self, path: Path) -> None:
        self.graph.resize_index(max(self.graph.element_count, 1))  # save no empty capacity
        self.graph.save_index(str(path))
        if path.stat().st_size < self.graph.element_count * self.dim * 4:  # hnswlib does not report a failed write
            raise OSError(28, 'the saved graph is incomplete (disk full?)')
