"""Files written so that a crash never leaves a half-written one taken for whole, and their errors in one line."""
import os
import zlib
from pathlib import Path

from executors.errors import WorkspaceError

__all__ = ['write_durably', 'file_crc32', 'storage_error']

CHUNK = 1 << 24  # bytes hashed at a time when checking the saved index


def write_durably(path: Path, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def file_crc32(path: Path) -> int:
    crc = 0
    with open(path, 'rb') as f:
        while chunk := f.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def storage_error(path: Path, what: str, error: OSError) -> WorkspaceError:
    """One line for a failed write: the file, what failed and why (disk full, permissions)."""
    reason = 'the disk is full' if error.errno == 28 else (error.strerror or str(error))
    return WorkspaceError(f'{path}: {what}: {reason}; what was indexed before is kept')
