"""Which index class a kind names; each engine is imported only when a workspace uses it."""
from pathlib import Path

from executors.storage.ann.base import AnnIndex, IndexConfig, StoredRows, TrainingRows


def index_class(kind: str):
    if kind == 'hnsw':
        from executors.storage.ann.hnsw import HnswIndex

        return HnswIndex
    from executors.storage.ann.ivf import IvfIndex

    return IvfIndex


def new_index(config: IndexConfig, dim: int, count: int, training_rows: TrainingRows, rows: StoredRows) -> AnnIndex:
    """An empty index laid out for `count` vectors (an IVF index is trained on `training_rows`, and rescores
    its candidates from `rows`)."""
    return index_class(config.kind).create(config, dim, count, training_rows, rows)


def load_index(config: IndexConfig, path: Path, dim: int, rows: StoredRows) -> AnnIndex:
    """The index saved at `path`; RuntimeError when it cannot be read."""
    return index_class(config.kind).load(config, path, dim, rows)
