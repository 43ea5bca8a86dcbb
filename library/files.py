"""Files users hand to VCED: video folders, uploads and query images."""
import contextlib
import itertools
import os
import re
import shutil
import tempfile
import unicodedata
import warnings
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from executors.errors import QueryError, WorkspaceError

VIDEO_EXTENSIONS = {'.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.wmv', '.flv', '.ts', '.3gp'}
JOINERS = '\u200c\u200d'  # zero-width (non-)joiners: parts of emoji and of Persian or Indic words
MAX_QUERY_PIXELS = 100_000_000  # a query image's width x height: beyond, decoding alone takes gigabytes


def find_videos(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every video file named in `paths`: files as given, folders searched recursively (sorted).
    A folder that cannot be listed is yielded itself, so that indexing it fails with the reason."""
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        seen, unreadable = set(), []
        for folder, dirs, files in os.walk(path, followlinks=True, onerror=unreadable.append):
            yield from (Path(e.filename) for e in unreadable)
            unreadable.clear()
            real = os.path.realpath(folder)
            if real in seen:  # a symlink loop
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            for name in sorted(files):
                if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                    yield Path(folder) / name
        yield from (Path(e.filename) for e in unreadable)


def read_image(source: str | Path | BinaryIO, name: str = '') -> np.ndarray:
    """The RGB uint8 array of an image file (a path or an open binary file, such as an upload).

    QueryError when it is not a complete image, or is too large to decode safely.
    """
    from PIL import Image, UnidentifiedImageError  # here: the commands that read no image start without it

    name = name or str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > MAX_QUERY_PIXELS:
                    raise QueryError(f'{name}: too large to search by ({width}x{height} pixels; at most '
                                     f'{MAX_QUERY_PIXELS // 1_000_000} megapixels): scale it down first')
                image.verify()  # a truncated PNG would otherwise decode to a partly black picture
            if hasattr(source, 'seek'):
                source.seek(0)
            with Image.open(source) as image:
                image.load()  # a truncated JPEG fails here
                return np.asarray(image.convert('RGB'))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            SyntaxError, ValueError) as e:
        raise QueryError(f'{name}: not a readable image ({e.__class__.__name__}: {str(e)[:80]})') from e


def save_upload(name: str, data: bytes | BinaryIO, folder: str | Path = 'data/videos') -> Path:
    """Save an uploaded file in `folder` under a safe form of `name`, never overwriting a file.

    The name loses any folder part and characters that are unsafe in a path (letters of every
    script and emoji stay); a clash gets a numbered name ('clip.mp4', 'clip-1.mp4', ...).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(f'{folder}: cannot create the upload folder ({e.strerror})') from e
    stem, suffix = safe_file_name(name)
    for n in itertools.count():
        path = folder / f"{stem}{f'-{n}' if n else ''}{suffix}"
        try:
            with open(path, 'xb') as out:  # 'x': fails instead of overwriting, even against a racing writer
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            path.unlink(missing_ok=True)
            raise WorkspaceError(f'{path}: cannot save the upload ({e.strerror})') from e


@contextlib.contextmanager
def query_file(name: str, data: bytes | BinaryIO) -> Iterator[Path]:
    """An uploaded query (a clip to locate) saved under a safe form of its name in a temporary folder,
    removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix='vced-query-') as folder:
        yield save_upload(name, data, folder)


def safe_file_name(name: str) -> tuple[str, str]:
    """(stem, suffix) of `name` without folders, control or path characters, at most ~150 bytes."""
    base = unicodedata.normalize('NFC', name.replace('\\', '/').rsplit('/', 1)[-1])
    stem, suffix = os.path.splitext(base)
    if not re.fullmatch(r'\.[A-Za-z0-9]{1,10}', suffix):
        stem, suffix = base, ''
    stem = ''.join(c if c in JOINERS or '\U000e0020' <= c <= '\U000e007f'  # emoji sequences, tag flags
                   else '_' if unicodedata.category(c)[0] in 'CZ' and c != ' ' or c in '/\\:*?"<>|$`' else c
                   for c in stem)
    stem = re.sub(r'_+', '_', stem).strip(' ._')
    stem = stem.encode('utf-8')[:150].decode('utf-8', 'ignore').rstrip(' .') or 'upload'
    return stem, suffix.lower()
