"""The nearest-neighbour indexes a workspace can keep over its float16 rows, and what they share.

Both answer the same few calls, so the VectorStore that owns the rows saves, checks and rebuilds
either the same way. A vector's label is its row in `embeddings.f16`.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

INDEX_KINDS = ('ivf', 'hnsw')
INDEX_FILES = {'ivf': 'ivf.faiss', 'hnsw': 'hnsw.bin'}  # each kind's file in the workspace; its check file is <stem>.json


@dataclass(frozen=True)
class IndexConfig:
    """Which index a workspace keeps (flow.yml's Indexer `index:`) and its knobs."""

    kind: str = 'ivf'  # ivf (faiss, exact below exact_below vectors) | hnsw (hnswlib)
    M: int = 16  # hnsw: links per vector
    ef_construction: int = 100  # hnsw: build effort
    ef_search: int = 256  # hnsw: search effort
    nprobe: int = 96  # ivf: lists searched per query
    exact_below: int = 40_000  # ivf: fewer live vectors than this are searched exhaustively (no training)

    def __post_init__(self):
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index must be one of {', '.join(INDEX_KINDS)}, not {self.kind!r}")

    def file_name(self) -> str:
        return INDEX_FILES[self.kind]


class AnnIndex(Protocol):
    """What the VectorStore asks of an index; scores are inner products of unit vectors."""

    def labels(self) -> np.ndarray:
        """The labels it holds (those removed may still be listed by hnsw, as deleted)."""

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, labels: np.ndarray) -> None: ...

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Labels and scores of (about) the k nearest, best first; may return fewer."""

    def search_many(self, queries: np.ndarray, k: int, near: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """search() of each row at once: labels and scores (n x k), -1 labels where fewer were found; `near`:
        only vectors nearly equal to the query (cosine >= ~0.8) are wanted, so it may search less widely."""

    def outgrown(self, live: int) -> bool:
        """Whether `live` vectors call for another layout (rebuild it from the rows)."""

    def write(self, path: Path) -> None:
        """Write it to `path`; OSError when the file could not be written whole."""


TrainingRows = Callable[[int], np.ndarray]  # n -> n live rows picked at random, as float32
StoredRows = Callable[[], np.ndarray]  # () -> every stored float16 row, indexed by label (a memory map)
