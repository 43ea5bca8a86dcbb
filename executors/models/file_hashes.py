"""sha256 of checkpoint files, remembered across processes in weights/sha256.json by path, size and modification
time (what make and git trust too): a model given by path is known by its hash, and reading a 350 MB checkpoint
for it cost every CLI search 0.5 s. A file changed in place gets a new modification time, so a new hash."""
import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

from executors.models.clip_weights import WEIGHTS_DIR

log = logging.getLogger(__name__)
RECORD_DIR = WEIGHTS_DIR
KEEP = 64  # files remembered; the oldest entry is dropped first


def file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The sha256 of the file at `path` (absolute), whose stat gave `size` and `mtime_ns`."""
    record = RECORD_DIR / 'sha256.json'
    known = _read(record)
    if known.get(path, [None])[:2] == [size, mtime_ns]:
        return known[path][2]
    with open(path, 'rb') as f:
        digest = hashlib.file_digest(f, 'sha256').hexdigest()
    known.pop(path, None)
    known[path] = [size, mtime_ns, digest]
    _write(record, dict(list(known.items())[-KEEP:]))
    return digest


def _read(record: Path) -> dict:
    try:
        known = json.loads(record.read_text())
        return known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(record: Path, known: dict) -> None:
    partial = record.with_name(f'{record.name}.{os.getpid()}.tmp')
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(known))
        os.replace(partial, record)
    except OSError as e:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        log.debug('cannot remember checkpoint hashes in %s (%s)', record, e.strerror or e)
