"""Keyframe thumbnails: the loader writes them to a staging folder; the storage moves it into place.

A staging folder is `<workspace>/thumbnails/.staging/<pid>-<video id>-<random>`: only the storage,
under the write lock, renames it to `thumbnails/<video id>` when the video is new, so two runs that
index the same file never overwrite each other's thumbnails, and a writer removes only the
staging folders of processes that died. Each placed folder holds checksums.json, the crc32 of each
JPEG: a thumbnail that is missing, cut short or swapped is known when read (`intact`), and the
loader draws it again from the video (`redraw`, when the video is indexed again).
"""
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from executors.errors import VideoError

log = logging.getLogger(__name__)

STAGING = '.staging'
CHECKSUMS = 'checksums.json'


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
    from PIL import Image  # here: the commands that draw no thumbnail start without it

    try:
        Image.fromarray(rgb).save(path, 'JPEG', quality=80)
    except OSError as e:
        raise VideoError(f'{path}: cannot save a thumbnail: {_reason(e)}') from e


def _reason(error: OSError) -> str:
    return 'the disk is full' if error.errno == 28 else (error.strerror or str(error))


def place_thumbnails(folder: Path, video_id: str, thumbnails: list[str]) -> list[str]:
    """Thumbnails into folder/<video_id>/ (a staging folder is moved, others copied); their new paths.

    Call under the workspace's write lock, for a video that is not stored: whatever is at the final
    place is a crashed writer's. OSError when the disk refuses.
    """
    final = folder / video_id
    sources = {Path(t).parent for t in thumbnails if t}
    if not sources or sources == {final}:
        return list(thumbnails)
    try:
        shutil.rmtree(final, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        if len(sources) == 1 and is_staged(next(iter(sources))):
            staged = sources.pop()
            record_checksums(staged)
            os.replace(staged, final)
        else:
            final.mkdir()
            for thumbnail in filter(None, thumbnails):
                shutil.copyfile(thumbnail, final / Path(thumbnail).name)
            record_checksums(final)
    except OSError:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return [str(final / Path(t).name) if t else '' for t in thumbnails]


def record_checksums(folder: Path) -> None:
    """Write folder/checksums.json: the crc32 of each of its JPEGs."""
    _write_checksums(folder, {p.name: zlib.crc32(p.read_bytes()) for p in sorted(folder.glob('*.jpg'))})


def intact(thumbnail: str) -> bool:
    """Whether a stored thumbnail is there and is the picture that was stored (its folder's checksum;
    thumbnails stored before checksums were kept need only be there)."""
    path = Path(thumbnail)
    try:
        data = path.read_bytes()
    except OSError:
        return False
    expected = _checksums(path.parent).get(path.name)
    return expected is None or zlib.crc32(data) == expected


def checked(thumbnail: str) -> str:
    """`thumbnail` when it is intact, else '' (a damaged file is removed: it is derived, and the next
    index of its video draws it again, as it does a missing one)."""
    if not thumbnail or intact(thumbnail):
        return thumbnail
    log.warning('%s: thumbnail missing or damaged; indexing its video again draws it anew', thumbnail)
    with contextlib.suppress(OSError):
        os.remove(thumbnail)
    return ''


def redraw(thumbnail: str, rgb: np.ndarray) -> None:
    """Save a keyframe's thumbnail again (in place of a missing or damaged one) and its checksum."""
    path = Path(thumbnail)
    partial = path.with_name(f'.{path.name}.{os.getpid()}')
    save_thumbnail(rgb, partial)
    os.replace(partial, path)
    _write_checksums(path.parent, {**_checksums(path.parent), path.name: zlib.crc32(path.read_bytes())})


def _checksums(folder: Path) -> dict[str, int]:
    try:
        found = json.loads((folder / CHECKSUMS).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write_checksums(folder: Path, checksums: dict[str, int]) -> None:
    partial = folder / f'.{CHECKSUMS}.{os.getpid()}'
    partial.write_text(json.dumps(checksums))
    os.replace(partial, folder / CHECKSUMS)


def remove_staged(thumbnails: list[str]) -> None:
    """The staging folder of a video that turned out to be stored already."""
    for folder in {Path(t).parent for t in thumbnails if t}:
        if is_staged(folder):
            shutil.rmtree(folder, ignore_errors=True)


def remove_orphans(folder: Path, stored: Iterable[str]) -> None:
    """Thumbnail folders no stored video owns (a crash before the commit), and staging folders of
    processes that died. Call under the workspace's write lock."""
    stored = set(stored)
    for entry in folder.iterdir() if folder.is_dir() else ():
        if entry.name != STAGING and entry.name not in stored:
            log.info('%s: removing the thumbnails of an interrupted index', entry)
            shutil.rmtree(entry, ignore_errors=True)
    remove_dead_staging(folder, lambda entry: not _alive(staging_owner(entry)))


def remove_dead_staging(folder: Path, dead: Callable[[Path], bool]) -> None:
    """The staging folders under folder/.staging/ whose writer `dead` says is gone."""
    staging = folder / STAGING
    for entry in staging.iterdir() if staging.is_dir() else ():
        if dead(entry):
            log.info('%s: removing the thumbnails of a writer that died', entry)
            shutil.rmtree(entry, ignore_errors=True)


def older_than(seconds: float) -> Callable[[Path], bool]:
    """Whether a staging folder was last changed more than `seconds` ago (writers on other machines
    share the folder, so their process ids say nothing here)."""
    return lambda entry: time.time() - entry.stat().st_mtime > seconds


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
