"""The default backend's files checked against each other before any of them is trusted."""
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from executors.storage.local.catalog import Catalog, VideoRow
from executors.errors import WorkspaceError
from executors.storage.interface import ImageSpace
from executors.storage.local.vector_store import VectorStore

log = logging.getLogger(__name__)


def catalog_may_be_created(folder: Path) -> bool:
    """Whether a new catalog may be made: never next to stored embeddings (restore it instead)."""
    catalog, rows = folder / 'catalog.sqlite', folder / 'embeddings.f16'
    holds_data = rows.exists() and rows.stat().st_size > 0
    if holds_data and not catalog.exists():
        raise WorkspaceError(f'{catalog}: missing, though {rows.name} holds the embeddings of indexed videos: '
                             f'restore it from a backup, or index your videos into a new --workspace')
    return not holds_data


def check_agreement(catalog: Catalog, vectors: VectorStore | None, videos: list[VideoRow]) -> None:
    """The catalog's videos, its keyframe rows and the embeddings file must agree."""
    committed = catalog.next_label()
    if vectors is not None and vectors.row_count() < committed:
        raise WorkspaceError(f'{vectors.rows_path}: holds {vectors.row_count()} embeddings but the catalog needs '
                             f'{committed}: restore the workspace or index into a new one')
    last = max((v.first_label + v.frame_count for v in videos), default=0)
    if catalog.frame_rows() != sum(v.frame_count for v in videos) or last > committed:
        raise WorkspaceError(f'{catalog.path}: its keyframe rows do not match its videos: restore it from a '
                             f'backup, or index your videos into a new --workspace')


def check_space(folder: Path, stored: ImageSpace | None, space: ImageSpace) -> None:
    """A video's vectors may join only those of the same image space (the same model)."""
    if stored and space.identity and stored.identity != space.identity:
        raise WorkspaceError(f'{folder}: holds vectors of {stored.describe()}, not of {space.describe()}: '
                             f'use that model here, or index with this one into a new --workspace')


def video_means(catalog: Catalog, videos: list[VideoRow], dim: int,
                rows: Callable[[VideoRow], np.ndarray]) -> np.ndarray:
    """Each video's stored mean embedding; one that fails its checksum is computed again from its `rows`."""
    means, damaged = catalog.means([v.id for v in videos], dim)
    for row in damaged:
        log.warning('%s: the stored mean of %s fails its checksum; using its keyframes', catalog.path, videos[row].path)
        means[row] = rows(videos[row]).mean(axis=0)
    return means
