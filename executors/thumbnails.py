"""Keyframe thumbnails: the loader writes them to a staging folder; the storage moves it into place.

A staging folder is `<workspace>/thumbnails/.staging/<pid>-<video id>-<random>`: only the storage,
under the write lock, renames it to `thumbnails/<video id>` when the video is new, so two runs that
index the same file never overwrite each other's thumbnails, and a writer removes only the
staging folders of processes that died.
"""
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from executors.errors import VideoError

STAGING = '.staging'


def staging_folder(workspace: str | Path, video_id: str) -> Path:
    """A new, empty staging folder for this process's thumbnails of `video_id`."""
    parent = Path(workspace) / 'thumbnails' / STAGING
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f'{os.getpid()}-{video_id[:16]}-', dir=parent))
    except OSError as e:
        raise VideoError(f'{parent}: cannot write thumbnails: {_reason(e)}') from e


def is_staged(folder: Path) -> bool:
    return folder.parent.name == STAGING


def staging_owner(folder: Path) -> int:
    """The pid of the process that made a staging folder (0 when the name has none)."""
    head = folder.name.partition('-')[0]
    return int(head) if head.isdigit() else 0


def save_thumbnail(rgb: np.ndarray, path: Path) -> None:
    """A small JPEG of a keyframe for the result cards; VideoError naming it when it cannot be written."""
    try:
        Image.fromarray(rgb).save(path, 'JPEG', quality=80)
    except OSError as e:
        raise VideoError(f'{path}: cannot save a thumbnail: {_reason(e)}') from e


def _reason(error: OSError) -> str:
    return 'the disk is full' if error.errno == 28 else (error.strerror or str(error))
