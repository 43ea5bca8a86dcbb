"""Serving a video file's bytes to a player: the part a `Range` header asks for, and the file's media type.

Shared by the page's media server and the HTTP API, so both answer seeking browsers the same way.
"""
import mimetypes
import re
from pathlib import Path

__all__ = ['CHUNK_BYTES', 'byte_range', 'media_type']

CHUNK_BYTES = 256 * 1024  # read and sent per write: what a playing video costs a server in memory
TYPES = {'.mp4': 'video/mp4', '.m4v': 'video/mp4', '.mov': 'video/quicktime', '.webm': 'video/webm',
         '.mkv': 'video/x-matroska', '.avi': 'video/x-msvideo', '.mpg': 'video/mpeg', '.mpeg': 'video/mpeg',
         '.ts': 'video/mp2t', '.3gp': 'video/3gpp', '.wmv': 'video/x-ms-wmv', '.flv': 'video/x-flv'}
RANGE = re.compile(r'bytes=(\d*)-(\d*)')


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a `Range: bytes=...` header's single range; None for the whole file.

    ValueError when the range cannot be satisfied (answered with 416).
    """
    match = RANGE.fullmatch((header or '').strip())
    if match is None:
        return None  # absent, another unit or several ranges: the whole file, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        first, last = max(size - int(last), 0), size - 1
    else:
        first, last = int(first), min(int(last), size - 1) if last else size - 1
    if first >= size or first > last:
        raise ValueError(f'bytes {first}-{last} of {size}')
    return first, last


def media_type(path: str | Path) -> str:
    """The Content-Type a browser plays `path` as."""
    return TYPES.get(Path(path).suffix.lower()) or mimetypes.guess_type(str(path))[0] or 'application/octet-stream'
